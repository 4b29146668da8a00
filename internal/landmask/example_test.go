package landmask_test

import (
	"fmt"
	"log"

	"github.com/tesserafs/tesserafs/internal/landmask"
)

// Read decodes a tile's mask, checking it is the tile's size; errors say
// what is wrong with which file.
func ExampleRead() {
	pix, err := landmask.Read("../../testdata/landmask/tiled_lzw_pred2.tiff", 50, 37)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(pix), pix[:4])

	_, err = landmask.Read("../../testdata/landmask/zstd.tiff", 50, 37)
	fmt.Println(err)
	// Output:
	// 1850 [0 7 14 21]
	// landmask ../../testdata/landmask/zstd.tiff: compression ZSTD not supported (want none, DEFLATE, LZW or PackBits)
}
