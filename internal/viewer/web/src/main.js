// The tesserafs map viewer: global_rgb (EPSG:4326 pyramid) at the level
// that matches the zoom, then each UTM zone's rgb at full resolution, all
// read from the year store by zarrita over HTTP from the same server. A
// click reads embeddings[r, c, :] and scales[r, c] of the zone pixel under
// the pointer and plots the dequantised 128-d vector.
//
// Screen convention (tests rely on it): the canvas is W × H CSS pixels with
// one canvas pixel per CSS pixel; the view is a centre (lon, lat) and dpp,
// degrees per pixel on both axes (plate carrée). Canvas pixel (x, y) shows
// the point at its centre: lon = lon0 + (x + 0.5)·dpp, lat = lat0 − (y + 0.5)·dpp,
// with lon0 = lon − W/2·dpp and lat0 = lat + H/2·dpp. Each canvas pixel
// takes the data pixel that contains that point (nearest, no smoothing);
// the background is BG, drawn where no pixel has alpha > 0.
import * as zarr from "zarrita";
import { forward, inverse } from "./utm.js";

const LEVEL0_RES = 1e-4; // degrees per level-0 pixel of global_rgb (spec §5)
const CHUNK = 512; // global_rgb chunk side
const ZONE_DPP = LEVEL0_RES; // at or below this dpp, zones are drawn from their rgb
const MAX_ZONE_WINDOW = 2048 * 2048; // zone pixels read for one zone in one frame
const BG = [24, 28, 36]; // background, where nothing is drawn

const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const statusEl = document.getElementById("status");
const pickEl = document.getElementById("pick");
const plotEl = document.getElementById("plot");

const api = {
  ready: false,
  error: null,
  year: null,
  zones: [],
  levels: 0,
  view: { lon: 0, lat: 0, dpp: 0.01 },
  mode: "",
  level: -1,
  renders: 0,
  lastPick: null,
  requests: 0,
  setView,
  idle: () => rendering,
  pickAt,
  toScreen,
  toLonLat,
};
window.__tfs = api;

let store = null; // zarrita store (consolidated metadata, whole-object rgb shards)
let globalArrays = []; // level → zarr.Array (opened lazily)
let rendering = Promise.resolve();
let renderQueued = false;
let renderGen = 0;

// ---- store -------------------------------------------------------------------

// wholeObjects wraps a store so that range reads of keys matching want are
// answered from the whole object, fetched once: a zone rgb shard is small
// (256 × 256 × 4 bytes before zstd) but holds 4096 inner chunks, which
// zarrita would otherwise fetch with one range request each. An LRU of
// `keep` objects bounds memory.
function wholeObjects(inner, want, keep) {
  const cache = new Map(); // key → Promise<Uint8Array | undefined>
  function whole(key, opts) {
    let p = cache.get(key);
    if (p) {
      cache.delete(key);
      cache.set(key, p);
      return p;
    }
    p = inner.get(key, opts).catch((err) => {
      cache.delete(key);
      throw err;
    });
    cache.set(key, p);
    while (cache.size > keep) cache.delete(cache.keys().next().value);
    return p;
  }
  return {
    get: (key, opts) => inner.get(key, opts),
    async getRange(key, range, opts) {
      if (!want(key)) return inner.getRange(key, range, opts);
      const b = await whole(key, opts);
      if (!b) return undefined;
      if ("suffixLength" in range) return b.subarray(Math.max(0, b.length - range.suffixLength));
      return b.subarray(range.offset, range.offset + range.length);
    },
  };
}

// counting counts requests (shown in the status line and to tests).
function counting(inner) {
  return {
    get: (key, opts) => (api.requests++, inner.get(key, opts)),
    getRange: (key, range, opts) => (api.requests++, inner.getRange(key, range, opts)),
  };
}

async function fetchJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

// findYear: ?year=YYYY, else the newest year the STAC catalog links.
async function findYear(base) {
  const q = new URLSearchParams(location.search).get("year");
  if (q) return q;
  const cat = await fetchJSON(new URL("catalog.json", base));
  const years = (cat.links || [])
    .map((l) => /geotessera-(\d+)\//.exec(l.href || ""))
    .filter(Boolean)
    .map((m) => Number(m[1]));
  if (!years.length) throw new Error("catalog.json links no year (geotessera-<year>/collection.json)");
  return String(Math.max(...years));
}

async function boot() {
  const base = new URL("./", location.href);
  api.year = await findYear(base);
  const storeURL = new URL(`${api.year}.zarr/`, base).href;
  const rootMeta = await fetchJSON(new URL("zarr.json", storeURL));
  const meta = rootMeta.consolidated_metadata?.metadata;
  if (!meta) throw new Error(`${storeURL}zarr.json has no consolidated metadata`);

  const http = counting(new zarr.FetchStore(storeURL, { useSuffixRequest: true }));
  const rgbShard = (key) => /^\/utm\d+\/rgb\/c\//.test(key);
  store = await zarr.withConsolidatedMetadata(wholeObjects(http, rgbShard, 48), { format: "v3" });

  const layout = meta.global_rgb?.attributes?.multiscales?.layout || [];
  api.levels = layout.length;
  globalArrays = layout.map(() => null);
  api.layout = layout.map((l) => ({
    asset: l.asset,
    shape: l["spatial:shape"],
    res: l["spatial:transform"][0],
    west: l["spatial:transform"][2],
    north: l["spatial:transform"][5],
  }));

  for (const [path, m] of Object.entries(meta)) {
    const mm = /^utm(\d+)$/.exec(path);
    if (!mm || m.node_type !== "group") continue;
    const at = m.attributes;
    const [res, , originE, , , originN] = at["spatial:transform"];
    const [h, w] = at["spatial:shape"];
    api.zones.push({
      zone: at["tessera:utm_zone"] ?? Number(mm[1]),
      path,
      originE,
      originN,
      res,
      h,
      w,
      bbox: zoneBBox(Number(mm[1]), originE, originN, res, h, w),
      arrays: {},
    });
  }
  api.zones.sort((a, b) => a.zone - b.zone);
  if (!api.zones.length) throw new Error(`${storeURL}: no utm zone in the consolidated metadata`);

  // Start on the union of the zones' footprints.
  let [w, s, e, n] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const z of api.zones) {
    w = Math.min(w, z.bbox[0]);
    s = Math.min(s, z.bbox[1]);
    e = Math.max(e, z.bbox[2]);
    n = Math.max(n, z.bbox[3]);
  }
  const { W, H } = size();
  const dpp = Math.max((e - w) / W, (n - s) / H) * 1.1;
  api.ready = true;
  await setView((w + e) / 2, (s + n) / 2, dpp);
}

// zoneBBox: lon/lat bounds of a zone grid, from its edges projected back.
function zoneBBox(zone, oe, on, res, h, w) {
  let b = [Infinity, Infinity, -Infinity, -Infinity];
  const k = 32;
  for (let i = 0; i <= k; i++) {
    for (const [e, n] of [
      [oe + (w * res * i) / k, on],
      [oe + (w * res * i) / k, on - h * res],
      [oe, on - (h * res * i) / k],
      [oe + w * res, on - (h * res * i) / k],
    ]) {
      const [lon, lat] = inverse(e, n, zone);
      b = [Math.min(b[0], lon), Math.min(b[1], lat), Math.max(b[2], lon), Math.max(b[3], lat)];
    }
  }
  return b;
}

async function zoneArray(z, name) {
  if (!z.arrays[name]) {
    z.arrays[name] = zarr.open.v3(zarr.root(store).resolve(`${z.path}/${name}`), { kind: "array" });
  }
  return z.arrays[name];
}

async function levelArray(l) {
  if (!globalArrays[l]) {
    globalArrays[l] = zarr.open.v3(zarr.root(store).resolve(`global_rgb/${api.layout[l].asset}/rgb`), {
      kind: "array",
    });
  }
  return globalArrays[l];
}

// ---- view ---------------------------------------------------------------------

function size() {
  return { W: canvas.width, H: canvas.height };
}

function origin() {
  const { W, H } = size();
  const v = api.view;
  return [v.lon - (W / 2) * v.dpp, v.lat + (H / 2) * v.dpp];
}

/** Canvas pixel (x, y) (fractional; integer + 0.5 is a pixel centre) → [lon, lat]. */
function toLonLat(x, y) {
  const [lon0, lat0] = origin();
  return [lon0 + x * api.view.dpp, lat0 - y * api.view.dpp];
}

/** [lon, lat] → canvas coordinates (fractional). */
function toScreen(lon, lat) {
  const [lon0, lat0] = origin();
  return [(lon - lon0) / api.view.dpp, (lat0 - lat) / api.view.dpp];
}

/** setView(lon, lat, dpp) → a promise that resolves once that view is drawn. */
function setView(lon, lat, dpp) {
  const { W, H } = size();
  const maxDpp = Math.max(360 / W, 180 / H);
  api.view = { lon, lat, dpp: Math.min(Math.max(dpp, 1e-7), maxDpp) };
  return requestRender();
}

function requestRender() {
  if (!renderQueued) {
    renderQueued = true;
    const prev = rendering;
    rendering = prev.then(async () => {
      renderQueued = false;
      await render();
    });
  }
  return rendering;
}

function setStatus(text) {
  statusEl.textContent = text;
}

// ---- drawing ------------------------------------------------------------------

async function render() {
  const gen = ++renderGen;
  const { W, H } = size();
  const v = { ...api.view };
  canvas.dataset.state = "loading";
  const img = new ImageData(W, H);
  const px = img.data;
  for (let i = 0; i < px.length; i += 4) {
    px[i] = BG[0];
    px[i + 1] = BG[1];
    px[i + 2] = BG[2];
    px[i + 3] = 255;
  }
  let mode, level = -1;
  try {
    if (v.dpp <= ZONE_DPP) {
      mode = "zone";
      for (const z of api.zones) await drawZone(z, v, px, W, H);
    } else {
      mode = "global";
      level = Math.min(api.levels - 1, Math.max(0, Math.floor(Math.log2(v.dpp / LEVEL0_RES))));
      await drawLevel(level, v, px, W, H);
    }
  } catch (err) {
    console.error(err);
    setStatus(`error: ${err.message}`);
    api.error = String(err.message || err);
    canvas.dataset.state = "error";
    return;
  }
  if (gen !== renderGen) return;
  ctx.putImageData(img, 0, 0);
  if (api.marker) placeMarker({ lon: api.marker[0], lat: api.marker[1] });
  api.mode = mode;
  api.level = level;
  api.renders++;
  canvas.dataset.mode = mode;
  canvas.dataset.level = String(level);
  canvas.dataset.dpp = String(v.dpp);
  canvas.dataset.state = "idle";
  const what = mode === "zone" ? "zone rgb at 10 m" : `global_rgb level ${level}`;
  setStatus(
    `${api.year}.zarr · ${what} · centre ${v.lon.toFixed(5)}, ${v.lat.toFixed(5)} · ` +
      `${(v.dpp * 111320).toFixed(2)} m/px north–south · ${api.requests} requests`,
  );
}

// drawLevel samples global_rgb level l at each canvas pixel's centre.
async function drawLevel(l, v, px, W, H) {
  const lay = api.layout[l];
  const arr = await levelArray(l);
  const [hL, wL] = lay.shape;
  const [lon0, lat0] = [v.lon - (W / 2) * v.dpp, v.lat + (H / 2) * v.dpp];
  // column and row of the level pixel under each canvas column and row
  const cols = new Int32Array(W), rows = new Int32Array(H);
  for (let x = 0; x < W; x++) cols[x] = Math.floor((lon0 + (x + 0.5) * v.dpp - lay.west) / lay.res);
  for (let y = 0; y < H; y++) rows[y] = Math.floor((lay.north - (lat0 - (y + 0.5) * v.dpp)) / lay.res);
  const ci0 = Math.max(0, Math.floor(cols[0] / CHUNK)), ci1 = Math.min(Math.ceil(wL / CHUNK) - 1, Math.floor(cols[W - 1] / CHUNK));
  const ri0 = Math.max(0, Math.floor(rows[0] / CHUNK)), ri1 = Math.min(Math.ceil(hL / CHUNK) - 1, Math.floor(rows[H - 1] / CHUNK));
  const jobs = [];
  for (let ri = ri0; ri <= ri1; ri++) for (let ci = ci0; ci <= ci1; ci++) jobs.push([ri, ci]);
  const chunks = await mapLimit(jobs, 6, async ([ri, ci]) => [ri, ci, await arr.getChunk([ri, ci, 0])]);
  for (const [ri, ci, ch] of chunks) {
    const d = ch.data;
    for (let y = 0; y < H; y++) {
      const r = rows[y] - ri * CHUNK;
      if (r < 0 || r >= CHUNK || rows[y] >= hL) continue;
      for (let x = 0; x < W; x++) {
        const c = cols[x] - ci * CHUNK;
        if (c < 0 || c >= CHUNK || cols[x] >= wL) continue;
        const k = (r * CHUNK + c) * 4;
        if (d[k + 3] > 0) blend(px, (y * W + x) * 4, d[k], d[k + 1], d[k + 2], d[k + 3]);
      }
    }
  }
}

function blend(px, o, r, g, b, a) {
  const t = a / 255;
  px[o] = Math.round(r * t + px[o] * (1 - t));
  px[o + 1] = Math.round(g * t + px[o + 1] * (1 - t));
  px[o + 2] = Math.round(b * t + px[o + 2] * (1 - t));
}

// drawZone samples zone z's rgb at each canvas pixel's centre, projected to
// the zone's UTM grid; pixels with alpha 0 leave what is below.
async function drawZone(z, v, px, W, H) {
  const [lon0, lat0] = [v.lon - (W / 2) * v.dpp, v.lat + (H / 2) * v.dpp];
  const lon1 = lon0 + W * v.dpp, lat1 = lat0 - H * v.dpp;
  if (z.bbox[2] < lon0 || z.bbox[0] > lon1 || z.bbox[3] < lat1 || z.bbox[1] > lat0) return;
  // Zone pixel window of the view: its border projected, one pixel of margin.
  let [cMin, cMax, rMin, rMax] = [Infinity, -Infinity, Infinity, -Infinity];
  const k = 16;
  for (let i = 0; i <= k; i++) {
    for (const [lon, lat] of [
      [lon0 + ((lon1 - lon0) * i) / k, lat0],
      [lon0 + ((lon1 - lon0) * i) / k, lat1],
      [lon0, lat0 + ((lat1 - lat0) * i) / k],
      [lon1, lat0 + ((lat1 - lat0) * i) / k],
    ]) {
      const [e, n] = forward(lon, lat, z.zone);
      const c = (e - z.originE) / z.res, r = (z.originN - n) / z.res;
      cMin = Math.min(cMin, c);
      cMax = Math.max(cMax, c);
      rMin = Math.min(rMin, r);
      rMax = Math.max(rMax, r);
    }
  }
  const c0 = Math.max(0, Math.floor(cMin) - 1), c1 = Math.min(z.w, Math.ceil(cMax) + 1);
  const r0 = Math.max(0, Math.floor(rMin) - 1), r1 = Math.min(z.h, Math.ceil(rMax) + 1);
  if (c1 <= c0 || r1 <= r0) return;
  if ((c1 - c0) * (r1 - r0) > MAX_ZONE_WINDOW) {
    throw new Error(`utm${z.zone}: view spans ${(r1 - r0)} × ${(c1 - c0)} zone pixels, more than one frame reads`);
  }
  const rgb = await zoneArray(z, "rgb");
  const win = await zarr.get(rgb, [zarr.slice(r0, r1), zarr.slice(c0, c1), null]);
  const d = win.data, ww = c1 - c0;
  for (let y = 0; y < H; y++) {
    const lat = lat0 - (y + 0.5) * v.dpp;
    if (lat < z.bbox[1] || lat > z.bbox[3]) continue;
    for (let x = 0; x < W; x++) {
      const lon = lon0 + (x + 0.5) * v.dpp;
      if (lon < z.bbox[0] || lon > z.bbox[2]) continue;
      const [e, n] = forward(lon, lat, z.zone);
      const c = Math.floor((e - z.originE) / z.res) - c0, r = Math.floor((z.originN - n) / z.res) - r0;
      if (c < 0 || c >= ww || r < 0 || r >= r1 - r0) continue;
      const kk = (r * ww + c) * 4;
      if (d[kk + 3] > 0) blend(px, (y * W + x) * 4, d[kk], d[kk + 1], d[kk + 2], d[kk + 3]);
    }
  }
}

async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// ---- pick ---------------------------------------------------------------------

// zonePixel: the zone pixel (row, col) holding (lon, lat), or null.
function zonePixel(z, lon, lat) {
  const [e, n] = forward(lon, lat, z.zone);
  const col = Math.floor((e - z.originE) / z.res), row = Math.floor((z.originN - n) / z.res);
  if (row < 0 || row >= z.h || col < 0 || col >= z.w) return null;
  return { row, col };
}

/**
 * pickAt(lon, lat): reads the embedding under (lon, lat) and plots it. The
 * zones are tried in descending order (as the map draws the later zone on
 * top); the first with a finite scale wins, else the first that contains
 * the point, reported without data.
 */
async function pickAt(lon, lat) {
  const hits = [];
  for (const z of [...api.zones].reverse()) {
    const p = zonePixel(z, lon, lat);
    if (p) hits.push([z, p]);
  }
  let pick = null;
  for (const [z, p] of hits) {
    const [emb, sc] = await Promise.all([zoneArray(z, "embeddings"), zoneArray(z, "scales")]);
    const [vec, scale] = await Promise.all([
      zarr.get(emb, [p.row, p.col, null]),
      zarr.get(sc, [p.row, p.col]),
    ]);
    const [clon, clat] = inverse(z.originE + (p.col + 0.5) * z.res, z.originN - (p.row + 0.5) * z.res, z.zone);
    const raw = Array.from(vec.data);
    const s = Number(scale);
    const cand = {
      lon, lat, zone: z.zone, row: p.row, col: p.col, pixelLon: clon, pixelLat: clat,
      scale: Number.isFinite(s) ? s : null,
      raw,
      // float32(embedding) × float32 scale, rounded to float32 as the spec's dequantisation
      values: Number.isFinite(s) ? raw.map((q) => Math.fround(q * s)) : null,
    };
    if (cand.values) {
      pick = cand;
      break;
    }
    pick ??= cand;
  }
  pick ??= { lon, lat, zone: null, row: null, col: null, scale: null, raw: null, values: null };
  showPick(pick);
  api.lastPick = pick;
  return pick;
}

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, String(val));
  parent?.appendChild(e);
  return e;
}

// showPick writes the pick's text and plots its 128 values as bars from a
// zero line: band b is the rect with data-band=b and data-value=value,
// height |value|·(plot height / 2) / max|value|.
function showPick(p) {
  const fmt = (x, d) => (x == null ? "–" : x.toFixed(d));
  const rows = [
    ["lon, lat", `${fmt(p.lon, 6)}, ${fmt(p.lat, 6)}`],
    ["zone", p.zone == null ? "no zone here" : `utm${String(p.zone).padStart(2, "0")} (EPSG:326${String(p.zone).padStart(2, "0")})`],
    ["pixel", p.row == null ? "–" : `row ${p.row}, col ${p.col}`],
    ["pixel centre", p.pixelLon == null ? "–" : `${fmt(p.pixelLon, 6)}, ${fmt(p.pixelLat, 6)}`],
    ["scale", p.scale == null ? (p.zone == null ? "–" : "NaN (no data: water or no tile)") : String(Number(p.scale.toPrecision(7)))],
  ];
  placeMarker(p);
  pickEl.replaceChildren();
  for (const [k, val] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = val;
    dd.dataset.field = k;
    pickEl.append(dt, dd);
  }
  for (const [k, val] of Object.entries({ zone: p.zone, row: p.row, col: p.col, lon: p.lon, lat: p.lat })) {
    pickEl.dataset[k] = val == null ? "" : String(val);
  }

  plotEl.replaceChildren();
  const PW = 384, PH = 160;
  plotEl.setAttribute("viewBox", `0 0 ${PW} ${PH}`);
  if (!p.values) {
    const t = el("text", { x: PW / 2, y: PH / 2, "text-anchor": "middle", class: "empty" }, plotEl);
    t.textContent = p.zone == null ? "click on data" : "no data at this pixel";
    plotEl.dataset.n = "0";
    return;
  }
  const vmax = Math.max(...p.values.map(Math.abs)) || 1;
  const mid = PH / 2, half = PH / 2 - 4, bw = PW / p.values.length;
  plotEl.dataset.n = String(p.values.length);
  plotEl.dataset.vmax = String(vmax);
  plotEl.dataset.half = String(half);
  plotEl.dataset.zeroY = String(mid);
  el("line", { x1: 0, x2: PW, y1: mid, y2: mid, class: "axis" }, plotEl);
  p.values.forEach((val, b) => {
    const h = (Math.abs(val) / vmax) * half;
    const r = el("rect", {
      x: b * bw, width: Math.max(bw - 0.5, 0.5), y: val >= 0 ? mid - h : mid, height: h,
      class: val >= 0 ? "pos" : "neg", "data-band": b, "data-value": val,
    }, plotEl);
    el("title", {}, r).textContent = `band ${b}: ${val}`;
  });
}

// placeMarker puts the pick marker (an element over the canvas, so the
// canvas holds only data) on the picked point.
function placeMarker(p) {
  api.marker = p.lon == null ? null : [p.lon, p.lat];
  const m = document.getElementById("marker");
  if (!api.marker) {
    m.hidden = true;
    return;
  }
  const [x, y] = toScreen(api.marker[0], api.marker[1]);
  m.style.left = `${x}px`;
  m.style.top = `${y}px`;
  m.hidden = false;
}

// ---- interaction -----------------------------------------------------------------

function resize() {
  const r = canvas.getBoundingClientRect();
  const W = Math.max(1, Math.round(r.width)), H = Math.max(1, Math.round(r.height));
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
    if (api.ready) requestRender();
  }
}

let drag = null;
canvas.addEventListener("pointerdown", (e) => {
  drag = { x: e.clientX, y: e.clientY, lon: api.view.lon, lat: api.view.lat, moved: false };
  canvas.setPointerCapture(e.pointerId);
});
canvas.addEventListener("pointermove", (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  if (drag.moved) {
    api.view = { ...api.view, lon: drag.lon - dx * api.view.dpp, lat: drag.lat + dy * api.view.dpp };
    requestRender();
  }
});
canvas.addEventListener("pointerup", (e) => {
  const d = drag;
  drag = null;
  if (!d || d.moved || !api.ready) return;
  const r = canvas.getBoundingClientRect();
  const [lon, lat] = toLonLat(e.clientX - r.left, e.clientY - r.top);
  pickAt(lon, lat).catch((err) => setStatus(`pick: ${err.message}`));
});
canvas.addEventListener(
  "wheel",
  (e) => {
    e.preventDefault();
    if (!api.ready) return;
    zoomAt(e.offsetX, e.offsetY, e.deltaY > 0 ? 1.25 : 0.8);
  },
  { passive: false },
);

// zoomAt scales dpp by f keeping the point under (x, y) in place.
function zoomAt(x, y, f) {
  const [lon, lat] = toLonLat(x, y);
  const dpp = api.view.dpp * f;
  const { W, H } = size();
  setView(lon + (W / 2 - x) * dpp, lat - (H / 2 - y) * dpp, dpp);
}

document.getElementById("zoom-in").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 0.5));
document.getElementById("zoom-out").addEventListener("click", () => zoomAt(canvas.width / 2, canvas.height / 2, 2));
window.addEventListener("resize", resize);

resize();
boot().catch((err) => {
  console.error(err);
  api.error = String(err.message || err);
  setStatus(`cannot open the store: ${api.error}`);
  canvas.dataset.state = "error";
});
