package keyspace

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		key   string
		want  Key
		phase string
	}{
		{"2024.zarr/zarr.json", Key{Kind: YearMeta, Year: 2024, Level: -1}, PhaseFinalize},
		{"2024.zarr/utm30/zarr.json", Key{Kind: ZoneMeta, Year: 2024, Zone: 30, Level: -1}, PhaseFinalize},
		{"2024.zarr/utm07/rgb/zarr.json", Key{Kind: ArrayMeta, Year: 2024, Zone: 7, Level: -1, Array: RGB}, PhaseFinalize},
		{"2024.zarr/utm30/embeddings/c/3/4/0", Key{Kind: Chunk, Year: 2024, Zone: 30, Level: -1, Array: Embeddings, Coords: []int{3, 4, 0}}, PhaseZones},
		{"2024.zarr/utm30/scales/c/0/12", Key{Kind: Chunk, Year: 2024, Zone: 30, Level: -1, Array: Scales, Coords: []int{0, 12}}, PhaseZones},
		{"2024.zarr/utm60/rgb/c/1/2/0", Key{Kind: Chunk, Year: 2024, Zone: 60, Level: -1, Array: RGB, Coords: []int{1, 2, 0}}, PhaseZones},
		{"2024.zarr/utm30/easting/c/0", Key{Kind: Chunk, Year: 2024, Zone: 30, Level: -1, Array: Easting, Coords: []int{0}}, PhaseFinalize},
		{"2024.zarr/global_rgb/zarr.json", Key{Kind: GlobalMeta, Year: 2024, Level: -1}, PhaseFinalize},
		{"2024.zarr/global_rgb/0/zarr.json", Key{Kind: LevelMeta, Year: 2024, Level: 0}, PhaseFinalize},
		{"2024.zarr/global_rgb/0/rgb/c/5/6/0", Key{Kind: Chunk, Year: 2024, Level: 0, Array: RGB, Coords: []int{5, 6, 0}}, PhaseGlobal0},
		{"2024.zarr/global_rgb/9/rgb/c/0/0/0", Key{Kind: Chunk, Year: 2024, Level: 9, Array: RGB, Coords: []int{0, 0, 0}}, PhaseGlobal},
		{"2024.zarr/global_rgb/3/band/c/0", Key{Kind: Chunk, Year: 2024, Level: 3, Array: Band, Coords: []int{0}}, PhaseFinalize},
		{"2024.zarr/global_rgb/3/band/zarr.json", Key{Kind: ArrayMeta, Year: 2024, Level: 3, Array: Band}, PhaseFinalize},
		{"catalog.json", Key{Kind: STACCatalog, Level: -1}, PhaseFinalize},
		{"geotessera-2024/collection.json", Key{Kind: STACCollection, Year: 2024, Level: -1}, PhaseFinalize},
		{"geotessera-2024/utm30_2024/utm30_2024.json", Key{Kind: STACItem, Year: 2024, Zone: 30, Level: -1}, PhaseFinalize},
	} {
		got, ok := Parse(tc.key)
		if !ok || got.Kind != tc.want.Kind || got.Year != tc.want.Year || got.Zone != tc.want.Zone ||
			got.Level != tc.want.Level || got.Array != tc.want.Array || !slices.Equal(got.Coords, tc.want.Coords) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.key, got, ok, tc.want)
			continue
		}
		if s := got.String(); s != tc.key {
			t.Errorf("Parse(%q).String() = %q", tc.key, s)
		}
		if p := got.Phase(); p != tc.phase {
			t.Errorf("Parse(%q).Phase() = %q, want %q", tc.key, p, tc.phase)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, key := range []string{
		"", "/", "zarr.json", "2024.zarr", "2024.zarr/", "/2024.zarr/zarr.json", "2024.zarr/zarr.json/",
		"02024.zarr/zarr.json", "x.zarr/zarr.json", "2024.zarr/utm30", "2024.zarr/utm3/zarr.json",
		"2024.zarr/utm61/zarr.json", "2024.zarr/utm00/zarr.json", "2024.zarr/utm300/zarr.json",
		"2024.zarr/utm30/foo/zarr.json", "2024.zarr/utm30/embeddings/c/1/2", "2024.zarr/utm30/embeddings/c/1/2/0/0",
		"2024.zarr/utm30/scales/c/01/2", "2024.zarr/utm30/scales/c/-1/2", "2024.zarr/utm30/scales/c/+1/2",
		"2024.zarr/utm30/scales/c/1/2/", "2024.zarr/utm30/scales/c//2", "2024.zarr/utm30/scales/c/../2",
		"2024.zarr/utm30/scales/d/1/2", "2024.zarr/global_rgb/rgb/c/0/0/0", "2024.zarr/global_rgb/01/zarr.json",
		"2024.zarr/global_rgb/0/embeddings/zarr.json", "2024.zarr/global_rgb/0/rgb/c/0/0",
		"geotessera-2024/utm30_2025/utm30_2025.json", "geotessera-2024/utm30_2024/other.json",
		"geotessera-2024/collection.jsonx", "geotessera-/collection.json", "catalog.json/x",
		"2024.zarr/utm30/scales/c/1234567890/0",
	} {
		if k, ok := Parse(key); ok {
			t.Errorf("Parse(%q) = %+v, want rejected", key, k)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ZoneShard(2024, 30, Embeddings, 3, 4), "2024.zarr/utm30/embeddings/c/3/4/0"},
		{ZoneShard(2024, 5, Scales, 3, 4), "2024.zarr/utm05/scales/c/3/4"},
		{ZoneShard(2024, 30, RGB, 0, 0), "2024.zarr/utm30/rgb/c/0/0/0"},
		{GlobalRGBChunk(2023, 2, 7, 8), "2023.zarr/global_rgb/2/rgb/c/7/8/0"},
		{ItemKey(2024, 34), "geotessera-2024/utm34_2024/utm34_2024.json"},
		{ZoneDir(2024, 1), "2024.zarr/utm01"},
		{LevelDir(2024, 0), "2024.zarr/global_rgb/0"},
		{StretchRecord(2024, 30), ".tesserafs-stretch-2024-utm30.json"},
		{StretchRecord(2024, 0), ".tesserafs-stretch-2024.json"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	k, _ := Parse("2024.zarr/utm30/rgb/c/3/4/0")
	if r := k.ChunkRow(); r != "2024.zarr/utm30/rgb/c/3/" {
		t.Errorf("ChunkRow = %q", r)
	}
	for dir, want := range map[string]string{
		"2024.zarr/utm30/embeddings": PhaseZones, "2024.zarr/utm30/scales": PhaseZones, "2024.zarr/utm30/rgb": PhaseZones,
		"2024.zarr/utm30/easting": PhaseFinalize, "2024.zarr/global_rgb/0/rgb": PhaseGlobal0,
		"2024.zarr/global_rgb/4/rgb": PhaseGlobal, "2024.zarr/global_rgb/4/band": PhaseFinalize, "nonsense": PhaseFinalize,
	} {
		if got := ChunksPhase(dir); got != want {
			t.Errorf("ChunksPhase(%q) = %q, want %q", dir, got, want)
		}
	}
	if !IsChunk("2024.zarr/utm30/scales/c/0/0") || IsChunk("2024.zarr/utm30/scales/zarr.json") || IsChunk("a/c/b") {
		t.Error("IsChunk")
	}
}

// FuzzParse: every key Parse accepts formats back to itself, and nothing
// it accepts has an empty, dot or absolute segment.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"2024.zarr/zarr.json", "2024.zarr/utm30/embeddings/c/3/4/0", "2024.zarr/global_rgb/0/rgb/c/5/6/0",
		"geotessera-2024/utm30_2024/utm30_2024.json", "catalog.json", "../etc/passwd", "2024.zarr/utm30/scales/c/01/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := Parse(s)
		if !ok {
			return
		}
		if got := k.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		if k2, ok := Parse(k.String()); !ok || k2.Kind != k.Kind || k2.Phase() != k.Phase() {
			t.Fatalf("round trip of %q: %+v", s, k2)
		}
	})
}
