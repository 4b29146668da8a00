//go:build !linux

package index

import (
	"os"
	"time"
)

// statFile returns the size and modification time of path.
func statFile(path string) (int64, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, time.Time{}, err
	}
	return fi.Size(), fi.ModTime(), nil
}
