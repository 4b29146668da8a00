package npy_test

import (
	"encoding/binary"
	"fmt"
	"log"
	"math"

	"github.com/tesserafs/tesserafs/internal/npy"
)

// Open checks a file against its header; ReadWindow reads rows and columns
// of it with pread.
func ExampleOpen() {
	f, err := npy.Open("../../testdata/npy/f4_3x5.npy") // numpy: arange(15, dtype=float32).reshape(3, 5) * 0.5
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fmt.Println(f.Header.Descr, f.Header.ShapeString(), f.Header.DataOffset)

	// Rows 1..2, columns 3..4.
	buf := make([]byte, 2*2*4)
	if err := f.ReadWindow(buf, 1, 3, 3, 5); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < len(buf); i += 4 {
		fmt.Print(math.Float32frombits(binary.LittleEndian.Uint32(buf[i:])), " ")
	}
	fmt.Println()
	// Output:
	// <f4 (3, 5) 128
	// 4 4.5 6.5 7
}
