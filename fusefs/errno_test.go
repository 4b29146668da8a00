package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tesserafs/tesserafs/internal/store"
)

func TestToErrno(t *testing.T) {
	f := &fsys{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"not found", fmt.Errorf("k: %w", store.ErrNotFound), syscall.ENOENT},
		{"canceled", fmt.Errorf("k: %w", context.Canceled), syscall.EINTR},
		{"deadline", context.DeadlineExceeded, syscall.EINTR},
		{"other", errors.New("tile x: truncated"), syscall.EIO},
		{"input file gone", fmt.Errorf("tile x: %w", fs.ErrNotExist), syscall.EIO},
		{"remote tile failed, already logged", fmt.Errorf("tile x: %w", reported{errors.New("http://h/x.npy: 503")}), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.toErrno("op", "k", tt.err); got != tt.want {
				t.Errorf("toErrno(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestNodesAnswerEROFS calls every write-ish method of both kinds of node
// directly: they answer EROFS even if a request got past the read-only
// mount flag.
func TestNodesAnswerEROFS(t *testing.T) {
	ctx := context.Background()
	for _, n := range []gofs.InodeEmbedder{&dirNode{}, &fileNode{}} {
		calls := map[string]syscall.Errno{}
		if x, ok := n.(gofs.NodeSetattrer); ok {
			calls["setattr"] = x.Setattr(ctx, nil, &fuse.SetAttrIn{}, &fuse.AttrOut{})
		}
		if x, ok := n.(gofs.NodeCreater); ok {
			_, _, _, calls["create"] = x.Create(ctx, "n", 0, 0o644, &fuse.EntryOut{})
		}
		if x, ok := n.(gofs.NodeMkdirer); ok {
			_, calls["mkdir"] = x.Mkdir(ctx, "n", 0o755, &fuse.EntryOut{})
		}
		if x, ok := n.(gofs.NodeMknoder); ok {
			_, calls["mknod"] = x.Mknod(ctx, "n", 0o644, 0, &fuse.EntryOut{})
		}
		if x, ok := n.(gofs.NodeUnlinker); ok {
			calls["unlink"] = x.Unlink(ctx, "n")
		}
		if x, ok := n.(gofs.NodeRmdirer); ok {
			calls["rmdir"] = x.Rmdir(ctx, "n")
		}
		if x, ok := n.(gofs.NodeRenamer); ok {
			calls["rename"] = x.Rename(ctx, "n", nil, "m", 0)
		}
		if x, ok := n.(gofs.NodeLinker); ok {
			_, calls["link"] = x.Link(ctx, nil, "n", &fuse.EntryOut{})
		}
		if x, ok := n.(gofs.NodeSymlinker); ok {
			_, calls["symlink"] = x.Symlink(ctx, "t", "n", &fuse.EntryOut{})
		}
		if x, ok := n.(gofs.NodeSetxattrer); ok {
			calls["setxattr"] = x.Setxattr(ctx, "user.x", nil, 0)
		}
		if x, ok := n.(gofs.NodeRemovexattrer); ok {
			calls["removexattr"] = x.Removexattr(ctx, "user.x")
		}
		if x, ok := n.(gofs.NodeWriter); ok {
			_, calls["write"] = x.Write(ctx, nil, []byte("x"), 0)
		}
		if x, ok := n.(gofs.NodeAllocater); ok {
			calls["allocate"] = x.Allocate(ctx, nil, 0, 1, 0)
		}
		if x, ok := n.(gofs.NodeCopyFileRanger); ok {
			_, calls["copy_file_range"] = x.CopyFileRange(ctx, nil, 0, nil, nil, 0, 1, 0)
		}
		if x, ok := n.(gofs.NodeTmpfiler); ok {
			_, _, _, calls["tmpfile"] = x.Tmpfile(ctx, 0, 0o644, &fuse.EntryOut{})
		}
		if len(calls) != 15 {
			t.Errorf("%T: %d write-ish methods, want 15", n, len(calls))
		}
		for op, errno := range calls {
			if errno != syscall.EROFS {
				t.Errorf("%T.%s = %v, want EROFS", n, op, errno)
			}
		}
	}
	if _, _, errno := (&fileNode{}).Open(ctx, syscall.O_RDWR); errno != syscall.EROFS {
		t.Errorf("Open(O_RDWR) = %v, want EROFS", errno)
	}
}

// reported is an error its source has logged already (as
// source.ReportedError): still EIO, logged at debug level only.
type reported struct{ error }

func (reported) Reported() bool { return true }
