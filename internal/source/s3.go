package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tesserafs/tesserafs/index"
	"github.com/tesserafs/tesserafs/internal/s3conf"
)

// s3Backend reads a tiles root from an S3 bucket with ranged GetObject
// calls. The SDK's own retries are off: fetch retries, the same way as
// for HTTP.
type s3Backend struct {
	loc    s3conf.Location
	client *s3.Client
	http   *http.Client
}

func (b *s3Backend) root() string { return b.loc.String() }

func (b *s3Backend) name(rel string) string { return b.loc.String() + strings.Trim(rel, "/") }

func (b *s3Backend) key(name string) (string, error) {
	k, ok := strings.CutPrefix(name, "s3://"+b.loc.Bucket+"/")
	if !ok {
		return "", fmt.Errorf("%s is not in bucket %s", name, b.loc.Bucket)
	}
	return k, nil
}

func (b *s3Backend) opt(o *s3.Options) {
	o.RetryMaxAttempts = 1
	if b.http != nil {
		o.HTTPClient = b.http
	}
}

func (b *s3Backend) get(ctx context.Context, name string, off, n int64) (*response, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.loc.Bucket), Key: aws.String(key)}
	if n > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	out, err := b.client.GetObject(ctx, in, b.opt)
	if err != nil {
		return nil, classifyS3(ctx, err)
	}
	r := &response{body: out.Body, etag: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		r.modTime = *out.LastModified
	}
	length := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		c, err := parseContentRange(cr)
		if err != nil {
			out.Body.Close()
			return nil, fmt.Errorf("%w: %w", errIntegrity, err)
		}
		if out.ContentLength != nil && length != c.last-c.first+1 {
			out.Body.Close()
			return nil, fmt.Errorf("%w: Content-Length %d for Content-Range %d-%d", errIntegrity, length, c.first, c.last)
		}
		r.first, r.last, r.total = c.first, c.last, c.total
	} else {
		if out.ContentLength == nil || (n > 0 && (off != 0 || length > n)) {
			out.Body.Close()
			return nil, fmt.Errorf("%w: no Content-Range in the answer to a ranged GET", errIntegrity)
		}
		r.first, r.last, r.total = 0, length-1, length
	}
	return r, nil
}

// classifyS3 maps an SDK error to not-exist, transient or final.
func classifyS3(ctx context.Context, err error) error {
	if ctx.Err() != nil && context.Cause(ctx) != errIdle {
		return err
	}
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		switch {
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
		case code == http.StatusTooManyRequests || code >= 500:
			after := retryAfter("")
			if re.Response != nil {
				after = retryAfter(re.Response.Header.Get("Retry-After"))
			}
			return &retryError{err: err, after: after}
		default:
			return err
		}
	}
	return &retryError{err: err} // transport: timeout, reset, refused
}

// list lists the "directory" name (a key prefix) with a delimiter.
func (b *s3Backend) list(ctx context.Context, name string) ([]index.DirEntry, error) {
	key, err := b.key(strings.TrimSuffix(name, "/") + "/")
	if err != nil {
		return nil, err
	}
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.loc.Bucket), Prefix: aws.String(key), Delimiter: aws.String("/")})
	var out []index.DirEntry
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, func(o *s3.Options) {
			if b.http != nil {
				o.HTTPClient = b.http
			}
		})
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", name, err)
		}
		for _, cp := range page.CommonPrefixes {
			if n := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), key), "/"); n != "" {
				out = append(out, index.DirEntry{Name: n, IsDir: true})
			}
		}
		for _, o := range page.Contents {
			if n := strings.TrimPrefix(aws.ToString(o.Key), key); n != "" && !strings.Contains(n, "/") {
				out = append(out, index.DirEntry{Name: n})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("listing %s: %w", name, fs.ErrNotExist)
	}
	return out, nil
}
