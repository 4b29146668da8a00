package viewer_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/twpayne/go-proj/v11"

	"github.com/tesserafs/tesserafs/index"
)

// TestUTMMatchesPROJ checks the viewer's own transverse Mercator
// (web/src/utm.js, run by node) against PROJ through go-proj, both ways,
// on points across a zone and beyond its edges, in both hemispheres and
// at the high latitudes of the synthetic test tiles: within 1 mm and 1e-8°
// (longitudes compared modulo 360; the viewer's are in [-180, 180)).
func TestUTMMatchesPROJ(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("TESSERAFS_REQUIRE_SERVERS") == "1" {
			t.Fatal("node is not installed")
		}
		t.Skip("SKIPPING: node is not installed; the viewer's UTM code is NOT tested here")
	}
	type pt struct {
		Zone     int
		Lon, Lat float64
	}
	var pts []pt
	for _, zone := range []int{1, 30, 31, 34, 60} {
		cm := float64(zone-1)*6 - 180 + 3
		for _, dLon := range []float64{-4.5, -3, -1.2, 0, 0.7, 3, 4} {
			for _, lat := range []float64{-85, -84.9, -60, -33.3, -0.05, 0, 0.05, 22.5, 52.05, 70, 84.95, 85.05} {
				pts = append(pts, pt{zone, cm + dLon, lat})
			}
		}
	}
	pts = append(pts, pt{30, -0.05, 52.05}) // the check value of dependencies.md

	in, _ := json.Marshal(pts)
	abs, err := filepath.Abs("web/src/utm.js")
	if err != nil {
		t.Fatal(err)
	}
	script := `import("file://" + process.argv[1]).then((u) => {
	  const pts = JSON.parse(process.argv[2]);
	  const out = pts.map((p) => {
	    const [e, n] = u.forward(p.Lon, p.Lat, p.Zone);
	    const [lon, lat] = u.inverse(e, n, p.Zone);
	    return [e, n, lon, lat];
	  });
	  process.stdout.write(JSON.stringify(out));
	});`
	b, err := exec.Command(node, "-e", script, abs, string(in)).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got [][4]float64
	if err := json.Unmarshal(b, &got); err != nil || len(got) != len(pts) {
		t.Fatalf("node output: %v (%d results for %d points)", err, len(got), len(pts))
	}
	p := index.NewProjector()
	for i, q := range pts {
		c := []proj.Coord{{q.Lon, q.Lat, 0, 0}}
		if err := p.Transform("OGC:CRS84", index.ZoneEPSG(q.Zone), c); err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if math.Abs(g[0]-c[0][0]) > 1e-3 || math.Abs(g[1]-c[0][1]) > 1e-3 {
			t.Errorf("forward zone %d (%v, %v): utm.js %.4f %.4f, PROJ %.4f %.4f", q.Zone, q.Lon, q.Lat, g[0], g[1], c[0][0], c[0][1])
		}
		c = []proj.Coord{{g[0], g[1], 0, 0}}
		if err := p.Transform(index.ZoneEPSG(q.Zone), "OGC:CRS84", c); err != nil {
			t.Fatal(err)
		}
		if math.Abs(math.Remainder(g[2]-c[0][0], 360)) > 1e-8 || g[2] < -180 || g[2] >= 180 || math.Abs(g[3]-c[0][1]) > 1e-8 {
			t.Errorf("inverse zone %d (%.4f, %.4f): utm.js %.10f %.10f, PROJ %.10f %.10f", q.Zone, g[0], g[1], g[2], g[3], c[0][0], c[0][1])
		}
	}
	if last := got[len(got)-1]; math.Abs(last[0]-702271.675) > 1e-3 || math.Abs(last[1]-5770707.106) > 1e-3 {
		t.Errorf("(-0.05, 52.05) → %.3f %.3f, want 702271.675 5770707.106", last[0], last[1])
	}
}
