package store

import (
	"context"
	"fmt"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/generate"
	"github.com/tesserafs/tesserafs/internal/keyspace"
	"github.com/tesserafs/tesserafs/zarr"
)

// buildTree lays out every key of the catalogue: one <year>.zarr per year
// and the STAC catalog beside them.
func (s *Store) buildTree() (*dirNode, error) {
	// Every zone has its rgb preview and every year its global_rgb.
	s.opts.Build.RGB = true
	root := newDir()
	for _, y := range s.cat.Years {
		root.add(fmt.Sprintf("%d.zarr", y.Year), s.yearTree(y))
	}
	if err := s.addSTAC(root); err != nil {
		return nil, err
	}
	return root, nil
}

func (s *Store) yearTree(y *index.Year) *dirNode {
	d := newDir()
	g := &zarr.GroupMetadata{Attributes: generate.RootAttrs(s.opts.Build, y.Year)}
	d.group = g
	// zarr.json comes first in listings; its consolidated metadata is
	// computed when first read, once the whole tree is in place.
	d.add("zarr.json", &fileNode{gen: func(ctx context.Context) ([]byte, error) {
		full := *g
		c, err := consolidated(ctx, d)
		if err != nil {
			return nil, err
		}
		full.Consolidated = c
		return encodeJSON(full)
	}})
	for _, z := range y.Zones {
		d.add(keyspace.ZoneGroup(z.Zone), s.zoneTree(z))
	}
	d.add("global_rgb", s.globalTree(y))
	return d
}

func (s *Store) zoneTree(z *index.ZoneGrid) *dirNode {
	d := newDir()
	d.group = &zarr.GroupMetadata{Attributes: generate.ZoneAttrs(s.opts.Build, z)}
	d.add("zarr.json", jsonFile(*d.group))
	// scales and rgb have the shards with a finite scale (spec §3).
	occ := newOccupancy(s.opts.Workers, func(sh index.ShardIndex) (bool, error) { return s.probe(z, sh) })
	d.add("band", newArray(generate.CoordMeta("int32", generate.Bands, "band"),
		&coordSource{n: generate.Bands, chunk: func(int) []byte { return generate.BandChunk(generate.Bands) }}))
	d.add("easting", newArray(generate.CoordMeta("float64", z.W, "easting"),
		&coordSource{n: z.W, chunk: func(k int) []byte {
			return generate.Float64Chunk(z.W, k, func(i int) float64 { return generate.Easting(z, i) })
		}}))
	d.add("embeddings", newArray(generate.EmbeddingsMeta(z), &shardSource{zone: z, trailing: true,
		gen: func(ctx context.Context, w *generate.Worker, i, j int) ([]byte, error) {
			return w.EmbeddingsShard(ctx, z, i, j)
		}}))
	d.add("northing", newArray(generate.CoordMeta("float64", z.H, "northing"),
		&coordSource{n: z.H, chunk: func(k int) []byte {
			return generate.Float64Chunk(z.H, k, func(i int) float64 { return generate.Northing(z, i) })
		}}))
	d.add("rgb", s.rgbArray(z, occ))
	d.add("scales", newArray(generate.ScalesMeta(z), &shardSource{zone: z, occ: occ,
		gen: func(ctx context.Context, w *generate.Worker, i, j int) ([]byte, error) {
			return w.ScalesShard(ctx, z, i, j, s.masks)
		}}))
	return d
}

// addSTAC adds catalog.json and, per year, the collection and one item
// per zone (spec §6).
func (s *Store) addSTAC(root *dirNode) error {
	p := index.NewProjector()
	var years []int
	for _, y := range s.cat.Years {
		years = append(years, y.Year)
		coll := newDir()
		var bboxes [][4]float64
		for _, z := range y.Zones {
			bb, err := generate.ZoneBBox(p, z)
			if err != nil {
				return err
			}
			bboxes = append(bboxes, bb)
			item := newDir()
			id := keyspace.ItemID(z.Zone, y.Year)
			item.add(id+".json", s.itemFile(z, bb))
			coll.add(id, item)
		}
		coll.names = append([]string{"collection.json"}, coll.names...)
		coll.children["collection.json"] = jsonFile(generate.Collection(y.Year, y.Zones, bboxes))
		root.add(keyspace.CollectionDir(y.Year), coll)
	}
	root.names = append([]string{"catalog.json"}, root.names...)
	root.children["catalog.json"] = jsonFile(generate.Catalog(years))
	return nil
}

// itemFile is zone z's STAC item. It records the zone's rgb stretch
// (tessera:rgb_stretch, spec §4), which depends on a sample of the zone's
// tiles, so the item is computed when first read, not when the tree is
// built or listed; a failure (a sample tile unreadable) is not kept.
func (s *Store) itemFile(z *index.ZoneGrid, bbox [4]float64) *fileNode {
	return &fileNode{gen: func(ctx context.Context) ([]byte, error) {
		st, mode, err := s.RGBStretch(ctx, z.Year, z.Zone)
		if err != nil {
			return nil, err
		}
		it := generate.Item(s.opts.Build, z, bbox)
		it.Properties.RGBStretch = generate.NewSTACStretch(st, mode)
		return encodeJSON(it)
	}}
}
