package materializer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tesserafs/tesserafs/internal/s3conf"
)

// S3Sink writes keys as objects under an s3:// prefix. Each key is one
// PutObject with If-None-Match: * (objects are at most a few MiB), so the
// object store itself refuses a second write; a refusal (412) is resolved
// by reading the object back and comparing bytes. The only other object is
// the state key of an unfinished run (see RunTo): what exists under the
// prefix is what is done.
type S3Sink struct {
	Client *s3.Client
	Loc    s3conf.Location
	// Retries bounds the attempts at one request beyond the SDK's own
	// retries (for 409 ConditionalRequestConflict, which S3 answers while
	// another conditional write of the same key is in flight).
	Retries int
}

// MetaSHA256 is the user metadata key holding the hex SHA-256 of an
// object's bytes (x-amz-meta-sha256).
const MetaSHA256 = "sha256"

func (s *S3Sink) String() string { return s.Loc.String() }

// Put implements Sink.
func (s *S3Sink) Put(ctx context.Context, key string, data []byte) (bool, error) {
	sum := sha256.Sum256(data)
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.Loc.Bucket),
		Key:           aws.String(s.Loc.Key(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		IfNoneMatch:   aws.String("*"),
		Metadata:      map[string]string{MetaSHA256: hex.EncodeToString(sum[:])},
	}
	if strings.HasSuffix(key, ".json") {
		in.ContentType = aws.String("application/json")
	} else {
		in.ContentType = aws.String("application/octet-stream")
	}
	retries := max(s.Retries, 3)
	for attempt := 0; ; attempt++ {
		in.Body = bytes.NewReader(data)
		_, err := s.Client.PutObject(ctx, in)
		if err == nil {
			return true, nil
		}
		switch status(err) {
		case http.StatusPreconditionFailed:
			return false, s.compare(ctx, key, data)
		case http.StatusConflict:
			if attempt < retries {
				if err := sleep(ctx, time.Duration(50<<attempt)*time.Millisecond); err != nil {
					return false, err
				}
				continue
			}
		}
		// A server may refuse a conditional write of an existing key by
		// closing the connection before the body is sent (versitygw does
		// when another writer of the key won the race): the SDK sees a
		// reset, not a 412. Whether the key exists decides.
		if have, ok, gerr := s.Get(ctx, key); gerr == nil && ok {
			if !bytes.Equal(have, data) {
				return false, &ConflictError{Where: s.Loc.String(), Key: key}
			}
			return false, nil
		}
		return false, fmt.Errorf("writing %s: %w", s.Loc.String()+key, err)
	}
}

// compare decides a refused write: the object holds the same bytes (done
// already) or other bytes (a conflict, never overwritten).
func (s *S3Sink) compare(ctx context.Context, key string, data []byte) error {
	have, ok, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	if !ok { // deleted between the PUT and the GET: not ours to re-create
		return fmt.Errorf("%s: refused as existing, then not found", s.Loc.String()+key)
	}
	if !bytes.Equal(have, data) {
		return &ConflictError{Where: s.Loc.String(), Key: key}
	}
	return nil
}

// Get implements Sink.
func (s *S3Sink) Get(ctx context.Context, key string) ([]byte, bool, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.Key(key))})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || status(err) == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading %s: %w", s.Loc.String()+key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", s.Loc.String()+key, err)
	}
	return b, true, nil
}

// Delete implements Sink.
func (s *S3Sink) Delete(ctx context.Context, key string) error {
	_, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.Key(key))})
	if err != nil && status(err) != http.StatusNotFound {
		return fmt.Errorf("deleting %s: %w", s.Loc.String()+key, err)
	}
	return nil
}

// List implements Sink: one paginated LIST of the prefix.
func (s *S3Sink) List(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.Loc.Bucket), Prefix: aws.String(s.Loc.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", s.Loc, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.Loc.Prefix)
			if !strings.HasPrefix(k, internalPrefix) {
				out[k] = true
			}
		}
	}
	return out, nil
}

// status is the HTTP status of a failed S3 call, or 0.
func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed":
			return http.StatusPreconditionFailed
		case "ConditionalRequestConflict":
			return http.StatusConflict
		}
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
