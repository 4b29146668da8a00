// Transverse Mercator on WGS 84 by Krüger's series to order n⁴ (Karney
// 2011, eqs. 35–36): millimetre accuracy within a UTM zone and well beyond,
// enough to place 10 m pixels. Northings are canonical as in the store
// (EPSG:326NN everywhere: southern points simply have negative northings).

const a = 6378137;
const f = 1 / 298.257223563;
const n = f / (2 - f);
const n2 = n * n, n3 = n2 * n, n4 = n3 * n;
const A = (a / (1 + n)) * (1 + n2 / 4 + n4 / 64);
const k0 = 0.9996;
const E0 = 500000;
const alpha = [
  n / 2 - (2 * n2) / 3 + (5 * n3) / 16 + (41 * n4) / 180,
  (13 * n2) / 48 - (3 * n3) / 5 + (557 * n4) / 1440,
  (61 * n3) / 240 - (103 * n4) / 140,
  (49561 * n4) / 161280,
];
const beta = [
  n / 2 - (2 * n2) / 3 + (37 * n3) / 96 - n4 / 360,
  n2 / 48 + n3 / 15 - (437 * n4) / 1440,
  (17 * n3) / 480 - (37 * n4) / 840,
  (4397 * n4) / 161280,
];
const delta = [
  2 * n - (2 * n2) / 3 - 2 * n3 + (116 * n4) / 45,
  (7 * n2) / 3 - (8 * n3) / 5 - (227 * n4) / 45,
  (56 * n3) / 15 - (136 * n4) / 35,
  (4279 * n4) / 630,
];
const e2n = (2 * Math.sqrt(n)) / (1 + n); // the eccentricity e
const RAD = Math.PI / 180;

/** UTM zone of a longitude (spec §2): floor((lon + 180) / 6) + 1, clamped to 1..60. */
export function zoneOf(lon) {
  return Math.min(60, Math.max(1, Math.floor((lon + 180) / 6) + 1));
}

/** Central meridian of a zone, degrees. */
export function centralMeridian(zone) {
  return (zone - 1) * 6 - 180 + 3;
}

/** forward(lon, lat, zone) → [easting, northing] in EPSG:326NN (canonical northing). */
export function forward(lon, lat, zone) {
  const phi = lat * RAD;
  const lam = (lon - centralMeridian(zone)) * RAD;
  const s = Math.sin(phi);
  const t = Math.sinh(Math.atanh(s) - e2n * Math.atanh(e2n * s));
  const xi = Math.atan2(t, Math.cos(lam));
  const eta = Math.atanh(Math.sin(lam) / Math.sqrt(1 + t * t));
  let x = xi, y = eta;
  for (let j = 1; j <= 4; j++) {
    x += alpha[j - 1] * Math.sin(2 * j * xi) * Math.cosh(2 * j * eta);
    y += alpha[j - 1] * Math.cos(2 * j * xi) * Math.sinh(2 * j * eta);
  }
  return [E0 + k0 * A * y, k0 * A * x];
}

/** inverse(easting, northing, zone) → [lon, lat] in degrees (canonical northing). */
export function inverse(e, nn, zone) {
  const xi = nn / (k0 * A);
  const eta = (e - E0) / (k0 * A);
  let xp = xi, yp = eta;
  for (let j = 1; j <= 4; j++) {
    xp -= beta[j - 1] * Math.sin(2 * j * xi) * Math.cosh(2 * j * eta);
    yp -= beta[j - 1] * Math.cos(2 * j * xi) * Math.sinh(2 * j * eta);
  }
  const chi = Math.asin(Math.sin(xp) / Math.cosh(yp));
  let phi = chi;
  for (let j = 1; j <= 4; j++) phi += delta[j - 1] * Math.sin(2 * j * chi);
  const lam = Math.atan2(Math.sinh(yp), Math.cos(xp));
  const lon = centralMeridian(zone) + lam / RAD; // wrapped to [-180, 180)
  return [((((lon + 180) % 360) + 360) % 360) - 180, phi / RAD];
}
