package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
)

// runCLI runs the tesserafs command line with args, as the program does
// (flag parsing included), and returns what it printed.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestRemoteCommands runs the commands with --tiles pointing at nginx
// over HTTP and at versitygw over S3, serving a copy of a synthetic tiles
// root (registry.parquet and landmasks.parquet included): materialize
// must give the tree a materialize of the local root gives, file for
// file, and preview the same PNG; inspect and cache warm must accept the
// URLs; each prints what the source fetched.
func TestRemoteCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("materializes three times")
	}
	root := testtiles.Root(t, "test")
	if _, err := os.Stat(filepath.Join(root, "registry.parquet")); err != nil {
		t.Skipf("SKIPPING: the synthetic root has no registry.parquet (%v): remote discovery needs it; NOT TESTED", err)
	}
	var logs bytes.Buffer
	setLogger(&logs)
	defer setLogger(os.Stderr)
	dir := t.TempDir()
	local := filepath.Join(dir, "local")
	if out, err := runCLI(t, "materialize", "--tiles", root, "--zones", "30", "--out", local); err != nil {
		t.Fatalf("local materialize: %v\n%s\n%s", err, out, logs.String())
	}
	want := readTree(t, local)
	if _, err := runCLI(t, "preview", "--tiles", root, "--zones", "30", "--max-pixels", "64K", "--out", filepath.Join(dir, "local.png")); err != nil {
		t.Fatalf("local preview: %v\n%s", err, logs.String())
	}
	wantPNG, _ := os.ReadFile(filepath.Join(dir, "local.png"))

	httpURL := testservers.Nginx(t, root)
	srv := testservers.Versity(t)
	srv.CreateBucket(t, "tiles")
	srv.Upload(t, root, "tiles", "v1/")
	srv.Setenv(t)

	for _, tc := range []struct{ name, url string }{{"http", httpURL}, {"s3", "s3://tiles/v1/"}} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			out := filepath.Join(dir, tc.name)
			stdout, err := runCLI(t, "materialize", "--tiles", tc.url, "--zones", "30", "--out", out)
			if err != nil {
				t.Fatalf("materialize --tiles %s: %v\n%s\n%s", tc.url, err, stdout, logs.String())
			}
			if !strings.Contains(stdout, "source "+tc.url+": ") {
				t.Errorf("materialize does not say what the source fetched:\n%s", stdout)
			}
			got := readTree(t, out)
			if len(got) != len(want) {
				t.Errorf("%d files from %s, %d from the local root", len(got), tc.url, len(want))
			}
			for rel, b := range want {
				if !bytes.Equal(got[rel], b) {
					t.Errorf("%s differs from the local materialize", rel)
				}
			}
			t.Logf("materialize --tiles %s: %d files identical to local; %s", tc.url, len(want), lastLine(stdout, "source "))

			png := filepath.Join(dir, tc.name+".png")
			if _, err := runCLI(t, "preview", "--tiles", tc.url, "--zones", "30", "--max-pixels", "64K", "--out", png); err != nil {
				t.Fatalf("preview --tiles %s: %v\n%s", tc.url, err, logs.String())
			}
			if b, _ := os.ReadFile(png); !bytes.Equal(b, wantPNG) {
				t.Errorf("preview from %s differs from the local one", tc.url)
			}
			if stdout, err := runCLI(t, "inspect", "--tiles", tc.url, "--zones", "30"); err != nil || !strings.Contains(stdout, "2024") {
				t.Errorf("inspect --tiles %s: %v\n%s", tc.url, err, stdout)
			}
			stdout, err = runCLI(t, "cache", "warm", "--tiles", tc.url, "--zones", "30", "--cache", filepath.Join(dir, tc.name+"-cache"))
			if err != nil || !strings.Contains(stdout, "source "+tc.url+": ") {
				t.Errorf("cache warm --tiles %s: %v\n%s", tc.url, err, stdout)
			}
		})
	}
}

// lastLine is the last line of s that starts with prefix.
func lastLine(s, prefix string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = l
		}
	}
	return out
}

// TestMaterializeOutageAtDiscovery: a tile's server answers 503 while
// materialize discovers the tiles over HTTP: the run writes nothing, names
// the tile, and exits 75 (try again later) instead of building a store
// without it; run again once the server answers, it builds the store a
// local run builds, file for file.
func TestMaterializeOutageAtDiscovery(t *testing.T) {
	root := testtiles.Root(t, "test")
	dir := t.TempDir()
	local := filepath.Join(dir, "local")
	if code, out := tfs(t, nil, "materialize", "--tiles", root, "--zones", "30", "--out", local); code != 0 {
		t.Fatalf("local materialize: exit %d\n%s", code, out)
	}
	outage := testservers.StartTileOutage(t, root)
	cat, err := index.Discover(context.Background(), root, index.Options{Zones: []int{30}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tl := cat.Years[0].Zones[0].Placements[0].Tile
	rel, _ := filepath.Rel(root, tl.EmbeddingsPath())
	outage.Fail(t, outage.URL+filepath.ToSlash(rel))

	if code, msg := tfs(t, nil, "inspect", "--tiles", outage.URL, "--zones", "30"); code != 0 || !strings.Contains(msg, "1 tile(s) unavailable") || !strings.Contains(msg, "unavailable "+outage.URL) {
		t.Errorf("inspect with a tile's server failing: exit %d, want it to list the tile as unavailable:\n%s", code, msg)
	}
	out := filepath.Join(dir, "out")
	code, msg := tfs(t, nil, "materialize", "--tiles", outage.URL, "--zones", "30", "--out", out)
	if code != 75 || !strings.Contains(msg, tl.Coord.Name()) || !strings.Contains(msg, "nothing was written") {
		t.Fatalf("with a tile's server failing: exit %d, want 75 naming %s:\n%s", code, tl.Coord.Name(), msg)
	}
	if es, err := os.ReadDir(out); err == nil && len(es) > 0 {
		t.Fatalf("%d entries written during the outage", len(es))
	}
	outage.Recover()
	if code, msg := tfs(t, nil, "materialize", "--tiles", outage.URL, "--zones", "30", "--out", out); code != 0 {
		t.Fatalf("after the outage: exit %d\n%s", code, msg)
	}
	sameTree(t, "after the outage", readTree(t, out), readTree(t, local))
}
