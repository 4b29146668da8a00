package zarr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// splitmix64 is a small, good hash: test data that looks random but is a pure
// function of its position.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fillEmbedding fills b with int8 values of a triangular distribution on
// −63..63, like quantised embeddings: no repeated sequences for LZ matching,
// only entropy to code (≈6.7 bits a byte, so zstd gets ≈1.18×, within the
// 1.08–1.25× of real embeddings). The wider triangle on −127..127 has ≈7.7
// bits a byte: zstd's Huffman tables then cost more than they save on a
// 2 KiB chunk and every chunk is stored raw, which tests nothing.
func fillEmbedding(b []byte, seed uint64) {
	for i := range b {
		h := splitmix64(seed + uint64(i))
		b[i] = byte(int8(int(h&0x3F) + int((h>>8)&0x3F) - 63))
	}
}

// randomChunks returns n chunks of size bytes, a fraction pAbsent of them nil.
func randomChunks(n, size int, pAbsent float64, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	chunks := make([][]byte, n)
	for i := range chunks {
		if r.Float64() < pAbsent {
			continue
		}
		chunks[i] = make([]byte, size)
		fillEmbedding(chunks[i], seed<<32+uint64(i)*uint64(size))
	}
	return chunks
}

func encodeChunks(t testing.TB, enc *ShardEncoder, dst []byte, chunks [][]byte) []byte {
	t.Helper()
	shard, err := enc.Encode(dst, len(chunks), func(i int) []byte { return chunks[i] })
	if err != nil {
		t.Fatal(err)
	}
	return shard
}

func equalChunks(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i := range want {
		if (got[i] == nil) != (want[i] == nil) || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("inner chunk %d: got %d bytes (nil %v), want %d bytes (nil %v)",
				i, len(got[i]), got[i] == nil, len(want[i]), want[i] == nil)
		}
	}
}

func TestShardRoundTrip(t *testing.T) {
	tests := []struct {
		n, size int
		pAbsent float64
	}{
		{1, 2048, 0},
		{4, 64, 0.5},
		{7, 2048, 0.3},
		{64, 1, 0.2},
		{4096, 2048, 0},
		{4096, 2048, 0.9},
		{4096, 64, 0.5},
	}
	enc := NewShardEncoder(3)
	var dst []byte
	for _, tc := range tests {
		t.Run(fmt.Sprintf("n=%d,size=%d,absent=%v", tc.n, tc.size, tc.pAbsent), func(t *testing.T) {
			chunks := randomChunks(tc.n, tc.size, tc.pAbsent, uint64(tc.n*tc.size))
			chunks[tc.n/2] = make([]byte, tc.size) // at least one present
			dst = encodeChunks(t, enc, dst, chunks)
			got, err := DecodeShard(dst, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			equalChunks(t, got, chunks)
			equalChunks(t, decodeIndependently(t, dst, tc.n), chunks)
		})
	}
}

func TestShardAllEmpty(t *testing.T) {
	enc := NewShardEncoder(3)
	for _, empty := range [][]byte{nil, {}} {
		shard, err := enc.Encode(make([]byte, 100), 16, func(int) []byte { return empty })
		if shard != nil || err != nil {
			t.Errorf("Encode of empty chunks = %d bytes, %v; want nil, nil", len(shard), err)
		}
	}
	if _, err := enc.Encode(nil, 0, nil); err == nil {
		t.Error("Encode of 0 chunks: no error")
	}
}

// TestShardEncodeAllocs checks the hot path: with its buffers grown, building
// a shard allocates nothing.
func TestShardEncodeAllocs(t *testing.T) {
	chunks := randomChunks(256, 2048, 0.2, 7)
	enc := NewShardEncoder(3)
	dst := encodeChunks(t, enc, nil, chunks)
	allocs := testing.AllocsPerRun(20, func() {
		dst, _ = enc.Encode(dst, len(chunks), func(i int) []byte { return chunks[i] })
	})
	if allocs != 0 {
		t.Errorf("Encode allocates %v times per shard, want 0", allocs)
	}
}

// TestShardLayout checks what readers rely on beyond the codec: the chunk data
// is contiguous from offset 0 in index order, so the shard has no gaps and its
// size is exactly data + index.
func TestShardLayout(t *testing.T) {
	chunks := randomChunks(64, 2048, 0.3, 11)
	shard := encodeChunks(t, NewShardEncoder(3), nil, chunks)
	index := shard[len(shard)-IndexSize(64) : len(shard)-4]
	next := uint64(0)
	for i := range 64 {
		off := binary.LittleEndian.Uint64(index[16*i:])
		nb := binary.LittleEndian.Uint64(index[16*i+8:])
		if chunks[i] == nil {
			if off != math.MaxUint64 || nb != math.MaxUint64 {
				t.Errorf("absent chunk %d: entry (%d, %d), want all ones", i, off, nb)
			}
			continue
		}
		if off != next {
			t.Errorf("chunk %d at offset %d, want %d", i, off, next)
		}
		next = off + nb
	}
	if next != uint64(len(shard)-IndexSize(64)) {
		t.Errorf("data ends at %d, index starts at %d", next, len(shard)-IndexSize(64))
	}
}

// decodeIndependently decodes a shard without DecodeShard or this package's
// decoder: the index parsed by hand from the end, the crc32c computed with a
// table of its own, the chunks with a fresh zstd decoder. It is the
// cross-check of the encoder that needs no Python.
func decodeIndependently(t *testing.T, shard []byte, n int) [][]byte {
	t.Helper()
	indexStart := len(shard) - 16*n - 4
	if indexStart < 0 {
		t.Fatalf("shard of %d bytes too short for %d chunks", len(shard), n)
	}
	index := shard[indexStart : len(shard)-4]
	if got, want := crc32.Checksum(index, crc32.MakeTable(crc32.Castagnoli)), binary.LittleEndian.Uint32(shard[len(shard)-4:]); got != want {
		t.Fatalf("crc32c %08x, stored %08x", got, want)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	chunks := make([][]byte, n)
	for i := range n {
		off := binary.LittleEndian.Uint64(index[16*i:])
		nb := binary.LittleEndian.Uint64(index[16*i+8:])
		if off == math.MaxUint64 && nb == math.MaxUint64 {
			continue
		}
		if off+nb > uint64(indexStart) {
			t.Fatalf("chunk %d: (%d, %d) beyond the data", i, off, nb)
		}
		frame := shard[off : off+nb]
		chunks[i], err = dec.DecodeAll(frame, nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		checkFrameHeader(t, frame, len(chunks[i]))
	}
	return chunks
}

// checkFrameHeader parses a zstd frame header (RFC 8878 §3.1.1.1) and checks
// it is one that every reader handles: content size present and right, no
// checksum, no dictionary.
func checkFrameHeader(t *testing.T, frame []byte, size int) {
	t.Helper()
	if len(frame) < 6 || binary.LittleEndian.Uint32(frame) != 0xFD2FB528 {
		t.Fatalf("not a zstd frame: % x", frame[:min(len(frame), 8)])
	}
	fhd := frame[4]
	fcsFlag, single, checksum, dictFlag := fhd>>6, fhd>>5&1, fhd>>2&1, fhd&3
	if checksum != 0 || dictFlag != 0 {
		t.Errorf("frame header %08b: checksum %d, dictionary %d; want neither", fhd, checksum, dictFlag)
	}
	if fcsFlag == 0 && single == 0 {
		t.Fatalf("frame header %08b: no content size", fhd)
	}
	pos := 5
	if single == 0 {
		pos++ // window descriptor
	}
	var fcs uint64
	switch fcsFlag {
	case 0:
		fcs = uint64(frame[pos])
	case 1:
		fcs = uint64(binary.LittleEndian.Uint16(frame[pos:])) + 256
	case 2:
		fcs = uint64(binary.LittleEndian.Uint32(frame[pos:]))
	case 3:
		fcs = binary.LittleEndian.Uint64(frame[pos:])
	}
	if fcs != uint64(size) {
		t.Errorf("frame content size %d, want %d", fcs, size)
	}
}

func TestZstdChunks(t *testing.T) {
	enc := NewShardEncoder(3)
	var dst []byte
	for _, size := range []int{1, 64, 255, 256, 2048, 65791, 65792, 1 << 20, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			raw := make([]byte, size)
			fillEmbedding(raw, uint64(size))
			dst = enc.EncodeZstd(dst, raw)
			checkFrameHeader(t, dst, size)
			got, err := DecodeZstd(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatal("DecodeZstd(EncodeZstd(raw)) != raw")
			}
		})
	}
	empty := enc.EncodeZstd(nil, nil)
	if got, err := DecodeZstd(empty); err != nil || len(got) != 0 {
		t.Errorf("DecodeZstd(EncodeZstd(nil)) = %v, %v; want an empty chunk", got, err)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {0x28, 0xb5, 0x2f, 0xfd, 0xff}} {
		if _, err := DecodeZstd(bad); err == nil {
			t.Errorf("DecodeZstd(% x): no error", bad)
		}
	}
}

// TestCompressionRatio guards the encoder settings: without entropy coding of
// all-literal blocks, int8 embeddings would be stored raw.
func TestCompressionRatio(t *testing.T) {
	chunks := randomChunks(256, 2048, 0, 3)
	shard := encodeChunks(t, NewShardEncoder(3), nil, chunks)
	if ratio := float64(256*2048) / float64(len(shard)); ratio < 1.1 {
		t.Errorf("compression ratio %.3f, want ≥ 1.1 (are literals entropy coded?)", ratio)
	}
}

// resealIndex recomputes the index checksum after a test has edited the index.
func resealIndex(shard []byte, n int) {
	index := shard[len(shard)-IndexSize(n) : len(shard)-4]
	binary.LittleEndian.PutUint32(shard[len(shard)-4:], crc32.Checksum(index, castagnoli))
}

func setEntry(shard []byte, n, i int, off, nb uint64) {
	index := shard[len(shard)-IndexSize(n):]
	binary.LittleEndian.PutUint64(index[16*i:], off)
	binary.LittleEndian.PutUint64(index[16*i+8:], nb)
	resealIndex(shard, n)
}

func TestDecodeShardErrors(t *testing.T) {
	const n = 4
	chunks := randomChunks(n, 2048, 0, 5)
	chunks[2] = nil
	good := encodeChunks(t, NewShardEncoder(3), nil, chunks)
	dataLen := uint64(len(good) - IndexSize(n))

	tests := []struct {
		name    string
		n       int
		corrupt func([]byte) []byte
		want    string
	}{
		{"crc mismatch", n, func(s []byte) []byte { s[len(s)-10] ^= 1; return s }, "index checksum"},
		{"crc bytes", n, func(s []byte) []byte { s[len(s)-1] ^= 0x80; return s }, "index checksum"},
		{"offset beyond data", n, func(s []byte) []byte { setEntry(s, n, 1, dataLen, 1); return s }, "outside"},
		{"nbytes beyond data", n, func(s []byte) []byte { setEntry(s, n, 0, 0, dataLen+1); return s }, "outside"},
		{"into the index", n, func(s []byte) []byte { setEntry(s, n, 3, dataLen-8, 16); return s }, "outside"},
		{"offset overflow", n, func(s []byte) []byte { setEntry(s, n, 0, 16, math.MaxUint64-8); return s }, "outside"},
		{"half absent", n, func(s []byte) []byte { setEntry(s, n, 2, math.MaxUint64, 5); return s }, "outside"},
		{"zero nbytes", n, func(s []byte) []byte { setEntry(s, n, 0, 0, 0); return s }, "zero bytes"},
		{"not zstd", n, func(s []byte) []byte { s[0] ^= 0xff; return s }, "zstd"},
		{"truncated", n, func(s []byte) []byte { return s[:50] }, "too short"},
		{"truncated to nothing", n, func(s []byte) []byte { return s[:0] }, "too short"},
		{"truncated front", n, func(s []byte) []byte { return s[1:] }, "inner chunk 0"},
		{"truncated end", n, func(s []byte) []byte { return s[:len(s)-1] }, "index checksum"},
		{"wrong chunk count", n + 1, func(s []byte) []byte { return s }, "index checksum"},
		{"huge chunk count", math.MaxInt / 8, func(s []byte) []byte { return s }, "too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shard := tc.corrupt(bytes.Clone(good))
			_, err := DecodeShard(shard, tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeShard error = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrCorruptShard) {
				t.Errorf("error %v does not wrap ErrCorruptShard", err)
			}
		})
	}
	if _, err := DecodeShard(good, 0); err == nil || errors.Is(err, ErrCorruptShard) {
		t.Errorf("DecodeShard(_, 0) = %v, want an argument error", err)
	}
}

// int8Fixture is the (8, 8, 16) int8 array of the shard fixtures, as its 2×2
// inner chunks of (4, 4, 16); inner chunk (1, 1) is absent. It must match
// testdata/zarr/make_zarr_python_shards.py.
func int8Fixture() [][]byte {
	chunks := make([][]byte, 4)
	for ci := range 2 {
		for cj := range 2 {
			if ci == 1 && cj == 1 {
				continue
			}
			b := make([]byte, 0, 4*4*16)
			for r := ci * 4; r < ci*4+4; r++ {
				for c := cj * 4; c < cj*4+4; c++ {
					for k := range 16 {
						b = append(b, byte(int8((r*31+c*17+k*7)%251-125)))
					}
				}
			}
			chunks[ci*2+cj] = b
		}
	}
	return chunks
}

// float32Fixture is the (8, 8) float32 array of the shard fixtures, r·8+c+0.5,
// as 2×2 inner chunks of (4, 4); inner chunk (0, 1) is absent (NaN).
func float32Fixture() [][]byte {
	chunks := make([][]byte, 4)
	for ci := range 2 {
		for cj := range 2 {
			if ci == 0 && cj == 1 {
				continue
			}
			b := make([]byte, 0, 4*4*4)
			for r := ci * 4; r < ci*4+4; r++ {
				for c := cj * 4; c < cj*4+4; c++ {
					b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(r*8+c)+0.5))
				}
			}
			chunks[ci*2+cj] = b
		}
	}
	return chunks
}

// TestDecodeShardFixtures decodes shards from testdata/zarr: ours (rewritten
// with -update) and zarr-python's (numcodecs zstd, the C library), so the
// decoder is checked against an independent writer.
func TestDecodeShardFixtures(t *testing.T) {
	fixtures := map[string][][]byte{"int8": int8Fixture(), "float32": float32Fixture()}
	if *update {
		enc := NewShardEncoder(3)
		for name, chunks := range fixtures {
			shard := encodeChunks(t, enc, nil, chunks)
			if err := os.WriteFile(filepath.Join(testdata, "shard_"+name+"_ours.bin"), shard, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range fixtures {
		for _, writer := range []string{"ours", "zarr_python"} {
			file := "shard_" + name + "_" + writer + ".bin"
			t.Run(file, func(t *testing.T) {
				shard, err := os.ReadFile(filepath.Join(testdata, file))
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodeShard(shard, len(want))
				if err != nil {
					t.Fatal(err)
				}
				equalChunks(t, got, want)
			})
		}
	}
}
