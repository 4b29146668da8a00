package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// TestPreviewMaxPixels runs preview without --level under several
// --max-pixels budgets. The level it names must give an image (the PNG
// written) of at most that many pixels, while the next finer level is
// refused under the same budget. For global_rgb over the box of the test
// preset's 2 × 2 block of 0.1° tiles, the level and image size are also
// checked against the resolution: 0.2° at 0.0001° · 2^level per pixel.
func TestPreviewMaxPixels(t *testing.T) {
	tiles := testtiles.Root(t, "test")
	chose := regexp.MustCompile(`chose level (\d+), the finest whose image \((\d+) × (\d+)\) fits --max-pixels (\S+)`)
	tests := []struct {
		maxPixels string
		zone      int
	}{
		{"2M", 0},    // level 0 is 4 M pixels, level 1 1 M
		{"300K", 0},  // level 1 is 1 M, level 2 250 K
		{"200K", 30}, // zone 30's rgb, halved
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s-zone%d", tc.maxPixels, tc.zone), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "p.png")
			o := previewOptions{storeOptions: storeOptions{tileOptions: tileOptions{Tiles: tiles, Workers: 2, Zones: []int{30, 31}}, Stretch: "zone"},
				Level: -1, MaxPixels: tc.maxPixels, Zone: tc.zone, Out: out}
			if tc.zone == 0 {
				o.BBox = "-0.1,84.9,0.1,85.1" // the 2 × 2 block of tiles
			}
			var stdout bytes.Buffer
			if err := runPreview(context.Background(), o, &stdout); err != nil {
				t.Fatal(err)
			}
			m := chose.FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("output does not say which level it chose:\n%s", stdout.String())
			}
			level, _ := strconv.Atoi(m[1])
			w, _ := strconv.Atoi(m[2])
			h, _ := strconv.Atoi(m[3])
			if m[4] != tc.maxPixels {
				t.Errorf("message names --max-pixels %s, want %s", m[4], tc.maxPixels)
			}
			budget, err := parseSize(tc.maxPixels)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
				t.Errorf("PNG is %d × %d, message says %d × %d", b.Dx(), b.Dy(), w, h)
			}
			if int64(w)*int64(h) > budget {
				t.Errorf("level %d: %d × %d is more than %d pixels", level, w, h, budget)
			}
			if tc.zone == 0 {
				if want := finestForBox(0.2, budget); level != want {
					t.Errorf("chose level %d, want %d", level, want)
				}
				side := 0.2 / (0.0001 * math.Exp2(float64(level)))
				if math.Abs(float64(w)-side) > 2 || math.Abs(float64(h)-side) > 2 {
					t.Errorf("level %d image is %d × %d, want about %.0f × %.0f", level, w, h, side, side)
				}
			}
			if level > 0 { // the next finer level does not fit
				o.Level = level - 1
				err := runPreview(context.Background(), o, &stdout)
				if err == nil || !strings.Contains(err.Error(), "too large") {
					t.Errorf("level %d under --max-pixels %s: err = %v, want too large", level-1, tc.maxPixels, err)
				}
			}
		})
	}
}

// finestForBox is the finest global_rgb level at which a side° square
// box fits in budget pixels, from the resolution alone.
func finestForBox(side float64, budget int64) int {
	for l := 0; ; l++ {
		n := math.Ceil(side / (0.0001 * math.Exp2(float64(l))))
		if int64(n*n) <= budget {
			return l
		}
	}
}
