// Package selfcontained holds one test: that a fresh clone of the
// repository, in an empty directory, passes go vet and go test with
// nothing from outside it (no sibling directories, no files left by an
// earlier run, no network). It has no code of its own.
package selfcontained
