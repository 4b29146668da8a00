//go:build !linux

package npy

// stat is Stat through Open.
func stat(path string) (Info, error) {
	f, err := Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	return Info{Header: f.Header, Size: f.Size, ModTime: f.ModTime}, nil
}
