// Package testfuse decides, for tests, whether this machine can mount a
// FUSE file system.
package testfuse

import (
	"os"
	"testing"
)

// Require skips t, loudly, when /dev/fuse is absent, or fails it when
// TESSERAFS_REQUIRE_MOUNT=1 says the machine must be able to mount (as CI
// does wherever /dev/fuse exists).
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("TESSERAFS_REQUIRE_MOUNT") == "1" {
			t.Fatalf("TESSERAFS_REQUIRE_MOUNT=1 but /dev/fuse is not available: %v", err)
		}
		t.Skipf("SKIPPING REAL-MOUNT TEST %s: /dev/fuse is not available (%v); "+
			"the mount is NOT tested on this machine", t.Name(), err)
	}
}
