package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/bkcache/bkcache/buildkit"
)

// S3 keeps archives as objects <prefix>cache-mounts/<name>/<key>.tar.zst,
// next to BuildKit's own cache objects. The client is configured as
// BuildKit's s3 cache configures its own (buildkit.NewS3Client).
type S3 struct {
	c            *s3.Client
	bucket, base string
}

func newS3(ctx context.Context, a map[string]string) (*S3, error) {
	if a["bucket"] == "" || a["name"] == "" {
		return nil, errors.New("s3: bucket and name are needed")
	}
	c, err := buildkit.NewS3Client(ctx, a)
	if err != nil {
		return nil, err
	}
	return &S3{c: c, bucket: a["bucket"], base: objectBase(a)}, nil
}

func (s *S3) String() string { return "s3 " + s.bucket + "/" + s.base }

func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.base + ArchiveName(key))})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("s3: %w", err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

func (s *S3) Put(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.base + ArchiveName(key)),
		Body: section(r, size), ContentLength: aws.Int64(size),
	})
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}
