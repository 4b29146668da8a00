package zarr

import (
	"testing"
	"time"
)

// The benchmark shard is the product's hot path: one 256×256×128 int8
// embeddings shard, 4096 inner chunks of 4×4×128 = 2 KiB, 8 MiB raw.
const (
	benchChunks    = 4096
	benchChunkSize = 4 * 4 * 128
)

func benchData() [][]byte { return randomChunks(benchChunks, benchChunkSize, 0, 42) }

// zstdFloor compresses the chunks with the encoder's zstd settings alone, into
// one buffer: the least any shard build must cost.
func zstdFloor(e *ShardEncoder, dst []byte, chunks [][]byte) []byte {
	dst = dst[:0]
	for _, c := range chunks {
		dst = e.zenc.EncodeAll(c, dst)
	}
	return dst
}

// BenchmarkShardEncode builds the shard and reports, besides MB/s of raw
// input, "x-floor": its time over that of BenchmarkZstdFloor's work, measured
// interleaved in the same loop so that both see the same machine load (1.00
// means the shard format costs nothing beyond zstd); and "raw/zstd", the
// compression ratio.
func BenchmarkShardEncode(b *testing.B) {
	chunks := benchData()
	enc := NewShardEncoder(3)
	chunk := func(i int) []byte { return chunks[i] }
	dst, err := enc.Encode(nil, benchChunks, chunk)
	if err != nil {
		b.Fatal(err)
	}
	floor := zstdFloor(enc, nil, chunks)
	var floorTime time.Duration
	b.SetBytes(benchChunks * benchChunkSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dst, _ = enc.Encode(dst, benchChunks, chunk)

		b.StopTimer()
		start := time.Now()
		floor = zstdFloor(enc, floor, chunks)
		floorTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed())/float64(floorTime), "x-floor")
	b.ReportMetric(float64(benchChunks*benchChunkSize)/float64(len(dst)), "raw/zstd")
}

// BenchmarkZstdFloor compresses the same 4096 inner chunks with the same
// encoder and settings, and nothing else.
func BenchmarkZstdFloor(b *testing.B) {
	chunks := benchData()
	enc := NewShardEncoder(3)
	dst := zstdFloor(enc, nil, chunks)
	b.SetBytes(benchChunks * benchChunkSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dst = zstdFloor(enc, dst, chunks)
	}
}

// BenchmarkDecodeShard is for reference: decoding is not on the serving path.
func BenchmarkDecodeShard(b *testing.B) {
	chunks := benchData()
	shard, err := NewShardEncoder(3).Encode(nil, benchChunks, func(i int) []byte { return chunks[i] })
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchChunks * benchChunkSize)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := DecodeShard(shard, benchChunks); err != nil {
			b.Fatal(err)
		}
	}
}
