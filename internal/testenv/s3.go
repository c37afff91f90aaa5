package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Has checks that the test environment's bucket holds key: what a
// cache export wrote, read back from the store itself.
func S3Has(t *testing.T, env Env, key string) {
	t.Helper()
	c := s3.New(s3.Options{
		Region:       env.S3Region,
		BaseEndpoint: aws.String(env.S3Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(env.S3AccessKey, env.S3SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(env.S3Bucket), Key: aws.String(key)}); err != nil {
		t.Errorf("s3 %s/%s: %v", env.S3Bucket, key, err)
	}
}
