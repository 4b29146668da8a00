// Package s3conf turns an s3:// URL and the standard AWS configuration into
// an S3 client, the same way for every reader and writer of tesserafs.
//
// Configuration is the ordinary AWS one: AWS_ENDPOINT_URL (or
// AWS_ENDPOINT_URL_S3) for an S3-compatible server, AWS_REGION,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile from
// ~/.aws/config. Path-style addressing is used when an endpoint is set (what
// S3-compatible servers such as versitygw and MinIO expect) and virtual-host
// style otherwise; TESSERAFS_S3_ADDRESSING=path|virtual overrides that.
// Credentials are never logged or put in error messages.
package s3conf

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Location is a bucket and a key prefix. Prefix is "" or ends in "/".
type Location struct {
	Bucket string
	Prefix string
}

// String is the location as an s3:// URL.
func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// Key is the object key of rel (a slash-separated path) under the prefix.
func (l Location) Key(rel string) string { return l.Prefix + rel }

// IsURL reports whether s names an S3 location rather than a path.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ErrBadURL is wrapped by every ParseURL error.
var ErrBadURL = errors.New("not a usable s3:// URL")

// ParseURL parses s3://bucket/prefix/. The bucket must be a valid S3
// bucket name; the prefix may not contain empty, "." or ".." segments,
// control characters or a query or fragment, so a key built from it never
// escapes the prefix.
func ParseURL(s string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%q: %w: %s", s, ErrBadURL, why)
	}
	if !IsURL(s) {
		return bad("want s3://bucket/prefix/")
	}
	if len(s) > 1024 {
		return bad("longer than 1024 bytes")
	}
	rest := strings.TrimPrefix(s, "s3://")
	for _, r := range rest {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	if strings.ContainsAny(rest, "?#\\") {
		return bad("query, fragment or backslash")
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return bad("bucket name must be 3-63 characters of a-z, 0-9, '.', '-'")
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return bad("empty, '.' or '..' path segment")
			}
		}
		if _, err := url.PathUnescape(prefix); err != nil {
			return bad("bad percent-escape")
		}
		if strings.Contains(prefix, "%") {
			return bad("percent-escapes are not allowed in the prefix")
		}
		prefix += "/"
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	first, last := b[0], b[len(b)-1]
	return first != '.' && first != '-' && last != '.' && last != '-' && !strings.Contains(b, "..")
}

// NewClient returns an S3 client configured from the environment and the
// shared AWS config files. A missing region defaults to us-east-1, which
// S3-compatible servers accept.
func NewClient(ctx context.Context) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3: loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	// Checksums only where the API requires them: S3-compatible servers
	// differ in which of the newer default checksums they accept.
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	pathStyle, err := usePathStyle()
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }), nil
}

func usePathStyle() (bool, error) {
	switch v := os.Getenv("TESSERAFS_S3_ADDRESSING"); v {
	case "path":
		return true, nil
	case "virtual":
		return false, nil
	case "":
		return os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != "", nil
	default:
		return false, fmt.Errorf("TESSERAFS_S3_ADDRESSING=%q: want path or virtual", v)
	}
}
