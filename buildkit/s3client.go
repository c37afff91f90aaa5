package buildkit

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// NewS3Client returns an S3 client configured from s3 cache attributes
// (region, endpoint_url, use_path_style, access_key_id, secret_access_key,
// session_token) as BuildKit's s3 cache configures its own
// (cache/remotecache/s3), so bkcache reaches the same bucket with the same
// credentials. BuildKit does not export its client.
func NewS3Client(ctx context.Context, attrs map[string]string) (*s3.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(attrs["region"]),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired))
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if attrs["access_key_id"] != "" && attrs["secret_access_key"] != "" {
			o.Credentials = credentials.NewStaticCredentialsProvider(attrs["access_key_id"], attrs["secret_access_key"], attrs["session_token"])
		}
		if attrs["endpoint_url"] != "" {
			o.UsePathStyle = attrs["use_path_style"] == "true"
			o.BaseEndpoint = aws.String(attrs["endpoint_url"])
		}
	}), nil
}
