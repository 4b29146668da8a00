//go:build unix

package npy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOpenFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.npy")
	if err := syscall.Mkfifo(fifo, 0o644); err == nil {
		// Opening a FIFO for reading would block until a writer comes:
		// only check Open's and Stat's verdict through a non-blocking open.
		f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = open(f, fifo)
		f.Close()
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("open(fifo) error %v", err)
		}
	}
}
