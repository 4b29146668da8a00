// Package viewer is the map viewer that `tesserafs serve` shows at "/": a
// page that draws the year store's global_rgb pyramid, then each zone's
// rgb at full resolution, and plots the dequantised embedding of a clicked
// pixel, all read by zarrita in the browser from the same server.
//
// The page is a JavaScript bundle built from web/ with npm packages at
// `make` time (make viewer) into dist/, and embedded here with go:embed, so
// nothing is fetched from the internet when it runs. A clean clone that has
// not run npm still builds: FS then serves a placeholder page saying how to
// build the viewer, and Built reports false.
package viewer

import (
	"embed"
	"io/fs"
	"sync"
	"testing/fstest"
)

//go:embed dist
var dist embed.FS

// Files of the bundle in dist/.
const (
	indexName       = "index.html"
	scriptName      = "app.js"
	placeholderName = "placeholder.html"
)

// Built reports whether the real viewer was embedded (make viewer ran
// before the Go build), rather than the placeholder.
func Built() bool {
	_, errIndex := fs.Stat(dist, "dist/"+indexName)
	_, errScript := fs.Stat(dist, "dist/"+scriptName)
	return errIndex == nil && errScript == nil
}

// FS is the viewer's files, to be served at the root of the server:
// "index.html" (the page at "/") and "app.js". Without a built bundle it
// holds only an "index.html" that says how to build the viewer.
func FS() fs.FS { return files() }

var files = sync.OnceValue(func() fs.FS {
	names := map[string]string{indexName: placeholderName}
	if Built() {
		names = map[string]string{indexName: indexName, scriptName: scriptName}
	}
	m := fstest.MapFS{}
	for name, from := range names {
		b, err := dist.ReadFile("dist/" + from)
		if err != nil {
			panic(err) // cannot happen: Built checked, the placeholder is committed
		}
		m[name] = &fstest.MapFile{Data: b, Mode: 0o444}
	}
	return m
})
