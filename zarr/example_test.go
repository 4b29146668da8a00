package zarr_test

import (
	"fmt"
	"log"

	"github.com/tesserafs/tesserafs/zarr"
)

// A sharded array: its metadata says how the bytes of each shard key are
// laid out; a ShardEncoder produces those bytes from the inner chunks.
func ExampleShardEncoder() {
	// An (8, 8) uint8 array stored as one (8, 8) shard of 2×2 inner chunks
	// of (4, 4).
	meta := zarr.ArrayMetadata{
		Shape:      []int{8, 8},
		DataType:   zarr.Uint8,
		ChunkShape: []int{8, 8}, // the shard shape
		FillValue:  0,
		Codecs: []zarr.Codec{zarr.ShardingCodec([]int{4, 4},
			[]zarr.Codec{zarr.BytesCodec(zarr.Uint8), zarr.ZstdCodec(3)},
			zarr.ShardIndexCodecs())},
		DimensionNames: []string{"y", "x"},
	}
	if _, err := zarr.Encode(meta); err != nil { // the array's zarr.json
		log.Fatal(err)
	}

	enc := zarr.NewShardEncoder(3) // one per worker
	inner := make([]byte, 4*4)
	shard, err := enc.Encode(nil, 4, func(i int) []byte {
		if i == 3 {
			return nil // all fill: absent from the shard
		}
		for j := range inner {
			inner[j] = byte(10*i + 1)
		}
		return inner
	})
	if err != nil {
		log.Fatal(err)
	}

	chunks, err := zarr.DecodeShard(shard, 4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key:", zarr.ChunkKey(0, 0))
	fmt.Println("inner chunk 2 starts", chunks[2][:4])
	fmt.Println("inner chunk 3 absent:", chunks[3] == nil)
	// Output:
	// key: c/0/0
	// inner chunk 2 starts [21 21 21 21]
	// inner chunk 3 absent: true
}

// Metadata values encode to the exact bytes of a zarr.json file.
func ExampleEncode() {
	data, err := zarr.Encode(zarr.ArrayMetadata{
		Shape:          []int{3},
		DataType:       zarr.Int32,
		ChunkShape:     []int{3},
		FillValue:      0,
		Codecs:         []zarr.Codec{zarr.BytesCodec(zarr.Int32)},
		Attributes:     zarr.Attrs{{Key: "units", Value: "m"}},
		DimensionNames: []string{"band"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	// Output:
	// {
	//   "zarr_format": 3,
	//   "node_type": "array",
	//   "shape": [
	//     3
	//   ],
	//   "data_type": "int32",
	//   "chunk_grid": {
	//     "name": "regular",
	//     "configuration": {
	//       "chunk_shape": [
	//         3
	//       ]
	//     }
	//   },
	//   "chunk_key_encoding": {
	//     "name": "default",
	//     "configuration": {
	//       "separator": "/"
	//     }
	//   },
	//   "fill_value": 0,
	//   "codecs": [
	//     {
	//       "name": "bytes",
	//       "configuration": {
	//         "endian": "little"
	//       }
	//     }
	//   ],
	//   "attributes": {
	//     "units": "m"
	//   },
	//   "dimension_names": [
	//     "band"
	//   ]
	// }
}
