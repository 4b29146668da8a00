package zarr

import (
	"fmt"
	"strconv"
	"strings"
)

// ChunkKey returns the key of the chunk (or shard) at the given grid
// coordinates, in the default v3 encoding with separator "/", relative to
// the array: ChunkKey(1, 2, 0) is "c/1/2/0"; a 0-dimensional array's only
// chunk is "c". Coordinates must be non-negative.
func ChunkKey(coords ...int) string {
	b := make([]byte, 0, 1+len(coords)*6)
	b = append(b, 'c')
	for _, c := range coords {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(c), 10)
	}
	return string(b)
}

// ParseChunkKey is the inverse of [ChunkKey]: it accepts only the canonical
// form (decimal, no sign, no leading zeros), so that every chunk has exactly
// one key and anything else can be answered "not found".
func ParseChunkKey(key string) ([]int, error) {
	if key == "c" {
		return []int{}, nil
	}
	rest, ok := strings.CutPrefix(key, "c/")
	if !ok {
		return nil, fmt.Errorf("zarr: chunk key %q: want \"c\" or \"c/<i>/...\"", key)
	}
	coords := make([]int, 0, strings.Count(rest, "/")+1)
	for _, s := range strings.Split(rest, "/") {
		if s == "" || len(s) > 1 && s[0] == '0' || s[0] < '0' || s[0] > '9' {
			return nil, fmt.Errorf("zarr: chunk key %q: coordinate %q is not canonical", key, s)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("zarr: chunk key %q: %w", key, err)
		}
		coords = append(coords, n)
	}
	return coords, nil
}
