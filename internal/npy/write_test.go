package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestWriteHeader(t *testing.T) {
	many := make([]int, 25000) // a dict longer than 65535 bytes: format 2.0
	for i := range many {
		many[i] = 1
	}
	tests := []struct {
		name      string
		descr     string
		shape     []int
		wantMajor byte
		wantDict  string
	}{
		{"embeddings", "<i1", []int{1113, 1106, 128}, 1, "{'descr': '<i1', 'fortran_order': False, 'shape': (1113, 1106, 128), }"},
		{"scales 2-D", "<f4", []int{1113, 1106}, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1113, 1106), }"},
		{"1-D is a 1-tuple", "<f4", []int{7}, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }"},
		{"scalar", "|u1", nil, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }"},
		{"empty", "<i1", []int{0, 3, 128}, 1, "{'descr': '<i1', 'fortran_order': False, 'shape': (0, 3, 128), }"},
		{"format 2.0", "<i1", many, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := WriteHeader(&buf, tc.descr, tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			if n != int64(len(b)) {
				t.Fatalf("returned %d, wrote %d", n, len(b))
			}
			if n%64 != 0 {
				t.Errorf("data offset %d is not a multiple of 64", n)
			}
			if !bytes.HasPrefix(b, []byte("\x93NUMPY")) {
				t.Fatalf("bad magic % x", b[:6])
			}
			if b[6] != tc.wantMajor || b[7] != 0 {
				t.Fatalf("version %d.%d, want %d.0", b[6], b[7], tc.wantMajor)
			}
			var hlen, start int
			if tc.wantMajor == 1 {
				hlen, start = int(binary.LittleEndian.Uint16(b[8:])), 10
			} else {
				hlen, start = int(binary.LittleEndian.Uint32(b[8:])), 12
			}
			if start+hlen != len(b) {
				t.Fatalf("header length field %d + preamble %d != %d", hlen, start, len(b))
			}
			dict := string(b[start:])
			if !strings.HasSuffix(dict, "\n") {
				t.Fatalf("header does not end in newline: %q", dict[len(dict)-8:])
			}
			trimmed := strings.TrimRight(dict[:len(dict)-1], " ")
			if tc.wantDict != "" && trimmed != tc.wantDict {
				t.Errorf("dict %q, want %q", trimmed, tc.wantDict)
			}
			if pad := len(dict) - 1 - len(trimmed); pad >= 64 {
				t.Errorf("%d bytes of padding, want < 64", pad)
			}
		})
	}
}

func TestWriteHeaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		descr string
		shape []int
	}{
		{"empty descr", "", []int{1}},
		{"quote in descr", "<i1'", []int{1}},
		{"negative dim", "<i1", []int{3, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := WriteHeader(&buf, tc.descr, tc.shape); err == nil {
				t.Fatal("no error")
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes on error", buf.Len())
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteHeaderWriteError(t *testing.T) {
	if _, err := WriteHeader(failWriter{}, "<i1", []int{1}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the writer's error wrapped", err)
	}
}

func ExampleWriteHeader() {
	var buf bytes.Buffer
	n, _ := WriteHeader(&buf, "<i1", []int{1113, 1106, 128})
	fmt.Printf("data at %d: %q\n", n, strings.TrimRight(buf.String()[10:], " \n"))
	// Output: data at 128: "{'descr': '<i1', 'fortran_order': False, 'shape': (1113, 1106, 128), }"
}
