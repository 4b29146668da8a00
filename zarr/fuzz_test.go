package zarr

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// seedFiles adds every testdata/zarr file matching pattern to the corpus.
func seedFiles(f *testing.F, pattern string, add func(data []byte)) {
	paths, err := filepath.Glob(filepath.Join(testdata, pattern))
	if err != nil {
		f.Fatal(err)
	}
	if len(paths) == 0 {
		f.Fatalf("no seed files %s in %s", pattern, testdata)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(data)
	}
}

// FuzzDecodeShard decodes arbitrary bytes as a shard. Whatever decodes must
// survive a re-encode and decode unchanged. With reseal set, the harness first
// recomputes the index checksum, so that mutations get past it to the index
// entries and the zstd frames.
func FuzzDecodeShard(f *testing.F) {
	seedFiles(f, "shard_*.bin", func(data []byte) {
		f.Add(data, uint16(3), false)
		f.Add(data, uint16(3), true)
	})
	enc := NewShardEncoder(3)
	f.Add(encodeChunks(f, enc, nil, randomChunks(9, 64, 0.5, 1)), uint16(8), true)
	f.Add([]byte{}, uint16(0), false)

	f.Fuzz(func(t *testing.T, shard []byte, n uint16, reseal bool) {
		nChunks := int(n%1024) + 1
		if reseal && len(shard) >= IndexSize(nChunks) {
			shard = bytes.Clone(shard) // fuzz inputs must not be modified
			resealIndex(shard, nChunks)
		}
		chunks, err := DecodeShard(shard, nChunks)
		if err != nil {
			return
		}
		if len(chunks) != nChunks {
			t.Fatalf("%d chunks, want %d", len(chunks), nChunks)
		}
		again, err := NewShardEncoder(3).Encode(nil, nChunks, func(i int) []byte { return chunks[i] })
		if err != nil {
			t.Fatal(err)
		}
		if again == nil {
			for i, c := range chunks {
				if c != nil {
					t.Fatalf("chunk %d present but the re-encoded shard is empty", i)
				}
			}
			return
		}
		back, err := DecodeShard(again, nChunks)
		if err != nil {
			t.Fatalf("decoding the re-encoded shard: %v", err)
		}
		for i := range chunks {
			if (back[i] == nil) != (chunks[i] == nil) || !bytes.Equal(back[i], chunks[i]) {
				t.Fatalf("chunk %d changed in a re-encode", i)
			}
		}
	})
}

// FuzzParseArrayMetadata parses arbitrary bytes as array metadata. Whatever
// parses must encode, and the encoding must parse back to the same encoding.
func FuzzParseArrayMetadata(f *testing.F) {
	seedFiles(f, "array_*.json", func(data []byte) { f.Add(data) })
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseArrayMetadata(data)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("parsed metadata does not encode: %v", err)
		}
		m2, err := ParseArrayMetadata(enc)
		if err != nil {
			t.Fatalf("encoded metadata does not parse: %v\n%s", err, enc)
		}
		enc2, err := Encode(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseGroupMetadata is FuzzParseArrayMetadata for groups, with
// consolidated metadata.
func FuzzParseGroupMetadata(f *testing.F) {
	seedFiles(f, "group_*.json", func(data []byte) { f.Add(data) })
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroupMetadata(data)
		if err != nil {
			return
		}
		enc, err := Encode(g)
		if err != nil {
			// The one thing we parse but refuse to write: nested (not
			// flat) consolidated metadata.
			if g.Consolidated != nil {
				for _, e := range g.Consolidated.Entries {
					if sub, ok := e.Node.(GroupMetadata); ok && sub.Consolidated != nil && len(sub.Consolidated.Entries) > 0 {
						return
					}
				}
			}
			t.Fatalf("parsed metadata does not encode: %v", err)
		}
		g2, err := ParseGroupMetadata(enc)
		if err != nil {
			t.Fatalf("encoded metadata does not parse: %v\n%s", err, enc)
		}
		enc2, err := Encode(g2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseChunkKey checks that a key parses only in its canonical form.
func FuzzParseChunkKey(f *testing.F) {
	for _, k := range []string{"c", "c/0", "c/1/2/0", "c/01", "c//", "zarr.json"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		coords, err := ParseChunkKey(key)
		if err != nil {
			return
		}
		if back := ChunkKey(coords...); back != key {
			t.Fatalf("ParseChunkKey(%q) = %v, which is key %q", key, coords, back)
		}
	})
}
