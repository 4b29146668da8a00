package generate

import (
	"encoding/binary"
	"math"
)

// CoordChunks is the number of chunks of a coordinate array of n elements.
func CoordChunks(n int) int { return (n + CoordChunk - 1) / CoordChunk }

// Float64Chunk returns chunk k of a float64 coordinate array of n elements
// whose element i is f(i), little endian. The edge chunk is stored at the
// full chunk length, padded with the fill value 0, as Zarr requires.
func Float64Chunk(n, k int, f func(int) float64) []byte {
	size := min(n, CoordChunk)
	out := make([]byte, 8*size)
	for o := range size {
		i := k*size + o
		if i >= n {
			break
		}
		binary.LittleEndian.PutUint64(out[8*o:], math.Float64bits(f(i)))
	}
	return out
}

// BandChunk returns the single chunk of an int32 band array 0..n−1.
func BandChunk(n int) []byte {
	out := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(int32(i)))
	}
	return out
}
