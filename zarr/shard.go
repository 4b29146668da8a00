package zarr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The shard format, as [ShardEncoder] writes it and [DecodeShard] reads it
// (sharding_indexed with index_location "end"):
//
//	chunk data ... | index: nChunks × (offset uint64 LE, nbytes uint64 LE) | crc32c(index) uint32 LE
//
// Offsets count from the start of the shard. Index entries are in C order
// over the inner-chunk grid; the chunk data may be in any order. An absent
// (empty) inner chunk has offset = nbytes = 2^64−1.
const (
	indexEntrySize = 16
	crcSize        = 4
	absent         = math.MaxUint64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// IndexSize returns the size in bytes of a shard index for nChunks inner
// chunks, checksum included.
func IndexSize(nChunks int) int { return nChunks*indexEntrySize + crcSize }

// encoderWindow is the zstd window of a ShardEncoder. Inner chunks are small
// (an embeddings inner chunk is 2 KiB); one maximum block (128 KiB) of history
// is plenty for them and for 1 MiB unsharded chunks, and keeps the memory of
// one encoder per worker small.
const encoderWindow = 128 << 10

// ShardEncoder builds shards and zstd-compressed chunks. It reuses one zstd
// encoder and one index buffer, so it is not safe for concurrent use: give
// each worker its own.
type ShardEncoder struct {
	zenc  *zstd.Encoder
	index []byte
}

// NewShardEncoder returns an encoder compressing at the zstd level zstdLevel
// (as the zstd codec's "level": 3 is zstd's default).
//
// The settings matter to readers and to the ratio: every frame is single
// segment, so it carries its content size even below 256 bytes (some zstd
// readers need it to size their output); no checksum (the codec says
// "checksum": false); and literals are always entropy coded, because int8
// embeddings have almost no repeated sequences and would otherwise be stored
// raw.
func NewShardEncoder(zstdLevel int) *ShardEncoder {
	zenc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(zstdLevel)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false),
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithSingleSegment(true),
		zstd.WithZeroFrames(true), // an empty input still gives a valid frame
		zstd.WithWindowSize(encoderWindow),
	)
	if err != nil {
		// Only invalid options fail, and the options are constants.
		panic(fmt.Sprintf("zarr: zstd encoder: %v", err))
	}
	return &ShardEncoder{zenc: zenc}
}

// Encode appends to dst[:0] the shard of nChunks inner chunks and returns it.
// chunk(i) returns the bytes of inner chunk i (C order over the inner-chunk
// grid) as the bytes codec gives them, that is the little-endian elements in
// C order; or nil (or empty) if that inner chunk is empty and should be
// absent. The slice is only read during the call and may be reused by the
// caller for the next chunk.
//
// If every inner chunk is empty, Encode returns (nil, nil): such a shard is
// not stored at all. Once dst has grown to a shard's size, Encode allocates
// nothing.
func (e *ShardEncoder) Encode(dst []byte, nChunks int, chunk func(i int) []byte) ([]byte, error) {
	if nChunks <= 0 {
		return nil, fmt.Errorf("zarr: encode shard: %d inner chunks", nChunks)
	}
	n := nChunks * indexEntrySize
	if cap(e.index) < n {
		e.index = make([]byte, n)
	}
	index := e.index[:n]
	out := dst[:0]
	present := 0
	for i := range nChunks {
		raw := chunk(i)
		entry := index[i*indexEntrySize : (i+1)*indexEntrySize]
		if len(raw) == 0 {
			binary.LittleEndian.PutUint64(entry[0:], absent)
			binary.LittleEndian.PutUint64(entry[8:], absent)
			continue
		}
		off := len(out)
		out = e.zenc.EncodeAll(raw, out)
		binary.LittleEndian.PutUint64(entry[0:], uint64(off))
		binary.LittleEndian.PutUint64(entry[8:], uint64(len(out)-off))
		present++
	}
	if present == 0 {
		return nil, nil
	}
	out = append(out, index...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(index, castagnoli)), nil
}

// EncodeZstd appends to dst[:0] the chunk raw encoded by the chain bytes →
// zstd (raw is already the bytes codec's output) and returns it. It is the
// encoding of an unsharded chunk.
func (e *ShardEncoder) EncodeZstd(dst, raw []byte) []byte {
	return e.zenc.EncodeAll(raw, dst[:0])
}

// MaxDecodedSize bounds what the decoding functions produce: one zstd frame
// may not decode to more, nor may all the inner chunks of one shard together.
// It keeps hostile input from claiming gigabytes; real chunks and shards are
// far smaller (a 256×256×128 int8 shard is 8 MiB).
const MaxDecodedSize = 256 << 20

// decoder is shared: DecodeAll is safe for concurrent use.
var decoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0), // one per GOMAXPROCS for concurrent DecodeAll
		zstd.WithDecoderMaxMemory(MaxDecodedSize),
		zstd.WithDecoderMaxWindow(MaxDecodedSize),
	)
	if err != nil {
		panic(fmt.Sprintf("zarr: zstd decoder: %v", err))
	}
	return d
})

// DecodeZstd decodes a chunk encoded by bytes → zstd (see
// [ShardEncoder.EncodeZstd]). It is safe for concurrent use.
func DecodeZstd(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("zarr: zstd: empty input")
	}
	out, err := decoder().DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("zarr: zstd: %w", err)
	}
	return out, nil
}

// ErrCorruptShard is wrapped by every error of [DecodeShard] that is about
// the shard's bytes (rather than its arguments).
var ErrCorruptShard = errors.New("corrupt shard")

// DecodeShard decodes a shard of nChunks inner chunks written with inner codecs
// bytes → zstd and the index at the end (bytes little endian + crc32c). It
// returns the inner chunks in index order, decompressed; nil marks an absent
// chunk. It verifies the index checksum and that every present chunk lies
// inside the data part of the shard. It is safe for concurrent use.
func DecodeShard(shard []byte, nChunks int) ([][]byte, error) {
	index, err := shardIndex(shard, nChunks)
	if err != nil {
		return nil, err
	}
	dataLen := uint64(len(shard) - len(index) - crcSize)
	type span struct{ start, end int }
	spans := make([]span, nChunks)
	var buf []byte
	prev := 0
	dec := decoder()
	for i := range nChunks {
		off := binary.LittleEndian.Uint64(index[i*indexEntrySize:])
		nb := binary.LittleEndian.Uint64(index[i*indexEntrySize+8:])
		if off == absent && nb == absent {
			spans[i] = span{-1, -1}
			continue
		}
		if off > dataLen || nb > dataLen-off {
			return nil, fmt.Errorf("zarr: shard: inner chunk %d: offset %d + nbytes %d outside the %d data bytes: %w",
				i, off, nb, dataLen, ErrCorruptShard)
		}
		if nb == 0 {
			return nil, fmt.Errorf("zarr: shard: inner chunk %d: zero bytes: %w", i, ErrCorruptShard)
		}
		// DecodeAll grows a short dst to exactly what one frame needs, which
		// would copy buf once per chunk; grow it geometrically instead,
		// guessing that this chunk is as large as the previous one.
		buf = slices.Grow(buf, prev)
		start := len(buf)
		buf, err = dec.DecodeAll(shard[off:off+nb], buf)
		if err != nil {
			return nil, fmt.Errorf("zarr: shard: inner chunk %d: zstd: %w: %w", i, err, ErrCorruptShard)
		}
		if len(buf) == start {
			return nil, fmt.Errorf("zarr: shard: inner chunk %d: decodes to zero bytes: %w", i, ErrCorruptShard)
		}
		if len(buf) > MaxDecodedSize {
			return nil, fmt.Errorf("zarr: shard: decodes to more than %d bytes: %w", MaxDecodedSize, ErrCorruptShard)
		}
		spans[i] = span{start, len(buf)}
		prev = len(buf) - start
	}
	// buf has stopped growing: only now can chunks share its backing array.
	chunks := make([][]byte, nChunks)
	for i, s := range spans {
		if s.start >= 0 {
			chunks[i] = buf[s.start:s.end:s.end]
		}
	}
	return chunks, nil
}

// shardIndex returns the index entries of a shard after checking its size and
// checksum.
func shardIndex(shard []byte, nChunks int) ([]byte, error) {
	if nChunks <= 0 {
		return nil, fmt.Errorf("zarr: shard: %d inner chunks", nChunks)
	}
	if len(shard) < crcSize || (len(shard)-crcSize)/indexEntrySize < nChunks {
		return nil, fmt.Errorf("zarr: shard: %d bytes, too short for the index of %d inner chunks (%d bytes): %w",
			len(shard), nChunks, IndexSize(nChunks), ErrCorruptShard)
	}
	n := nChunks * indexEntrySize
	index := shard[len(shard)-crcSize-n : len(shard)-crcSize]
	want := binary.LittleEndian.Uint32(shard[len(shard)-crcSize:])
	if got := crc32.Checksum(index, castagnoli); got != want {
		return nil, fmt.Errorf("zarr: shard: index checksum %08x, stored %08x: %w", got, want, ErrCorruptShard)
	}
	return index, nil
}
