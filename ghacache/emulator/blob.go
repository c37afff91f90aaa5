package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// ErrBlobNotFound is returned by a BlobStore for a blob that does not exist.
var ErrBlobNotFound = errors.New("blob not found")

// BlobAccess is what a signed URL allows.
type BlobAccess int

const (
	// AccessRead allows GET and HEAD (a download URL).
	AccessRead BlobAccess = iota
	// AccessWrite allows creating and writing the blob (an upload URL).
	AccessWrite
)

// BlobStore holds cache archives. The cache service never carries archive
// bytes itself in v2: clients move them through signed URLs, as on GitHub.
type BlobStore interface {
	// SignedURL returns a URL that grants access to one blob until expiry.
	SignedURL(name string, access BlobAccess, expiry time.Time) (string, error)
	// Size returns the committed size of a blob, or ErrBlobNotFound.
	Size(ctx context.Context, name string) (int64, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, name string) error
	// StageBlock and CommitBlocks build a blob from chunks (the v1 upload).
	StageBlock(ctx context.Context, name, blockID string, data []byte) error
	CommitBlocks(ctx context.Context, name string, blockIDs []string) error
}

// AzureConfig addresses a container in Azure Blob Storage or Azurite.
type AzureConfig struct {
	// AccountURL is the blob service URL. Azurite needs the IP style,
	// e.g. http://127.0.0.1:10000/devstoreaccount1.
	AccountURL  string
	AccountName string
	AccountKey  string
	Container   string
}

// AzureStore keeps archives in one Azure container and hands out real
// service SAS URLs for it, signed with the account key.
type AzureStore struct {
	cfg  AzureConfig
	cred *azblob.SharedKeyCredential
	svc  *azblob.Client
}

// NewAzureStore checks cfg and creates the container if it is missing.
func NewAzureStore(ctx context.Context, cfg AzureConfig) (*AzureStore, error) {
	var missing []string
	for name, v := range map[string]string{"account URL": cfg.AccountURL, "account name": cfg.AccountName, "account key": cfg.AccountKey, "container": cfg.Container} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("azure blob store: missing %s", strings.Join(missing, ", "))
	}
	u, err := url.Parse(cfg.AccountURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("azure blob store: account URL %q is not an absolute URL", cfg.AccountURL)
	}
	cfg.AccountURL = strings.TrimRight(cfg.AccountURL, "/")
	cred, err := azblob.NewSharedKeyCredential(cfg.AccountName, cfg.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("azure blob store: account key: %w", err)
	}
	svc, err := azblob.NewClientWithSharedKeyCredential(cfg.AccountURL+"/", cred, nil)
	if err != nil {
		return nil, fmt.Errorf("azure blob store: %w", err)
	}
	if _, err := svc.CreateContainer(ctx, cfg.Container, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, fmt.Errorf("azure blob store: creating container %q: %w", cfg.Container, err)
	}
	return &AzureStore{cfg: cfg, cred: cred, svc: svc}, nil
}

func (s *AzureStore) blobURL(name string) string {
	return s.cfg.AccountURL + "/" + s.cfg.Container + "/" + name
}

func (s *AzureStore) blockBlob(name string) (*blockblob.Client, error) {
	return blockblob.NewClientWithSharedKeyCredential(s.blobURL(name), s.cred, nil)
}

// SignedURL returns a blob SAS URL. Upload URLs may create and write;
// download URLs may only read.
func (s *AzureStore) SignedURL(name string, access BlobAccess, expiry time.Time) (string, error) {
	perms := sas.BlobPermissions{Read: true}
	if access == AccessWrite {
		perms = sas.BlobPermissions{Create: true, Write: true}
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry.UTC(),
		Permissions:   perms.String(),
		ContainerName: s.cfg.Container,
		BlobName:      name,
	}.SignWithSharedKey(s.cred)
	if err != nil {
		return "", fmt.Errorf("signing blob URL: %w", err)
	}
	return s.blobURL(name) + "?" + qp.Encode(), nil
}

// Size reads the blob's committed length.
func (s *AzureStore) Size(ctx context.Context, name string) (int64, error) {
	c, err := s.blockBlob(name)
	if err != nil {
		return 0, err
	}
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return 0, ErrBlobNotFound
		}
		return 0, fmt.Errorf("reading blob properties: %w", err)
	}
	if props.ContentLength == nil {
		return 0, nil
	}
	return *props.ContentLength, nil
}

// Delete removes the blob.
func (s *AzureStore) Delete(ctx context.Context, name string) error {
	_, err := s.svc.DeleteBlob(ctx, s.cfg.Container, name, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("deleting blob: %w", err)
	}
	return nil
}

// StageBlock uploads one uncommitted block.
func (s *AzureStore) StageBlock(ctx context.Context, name, blockID string, data []byte) error {
	c, err := s.blockBlob(name)
	if err != nil {
		return err
	}
	if _, err := c.StageBlock(ctx, blockID, nopCloser{bytes.NewReader(data)}, nil); err != nil {
		return fmt.Errorf("staging block: %w", err)
	}
	return nil
}

// CommitBlocks commits the staged blocks in order.
func (s *AzureStore) CommitBlocks(ctx context.Context, name string, blockIDs []string) error {
	c, err := s.blockBlob(name)
	if err != nil {
		return err
	}
	if _, err := c.CommitBlockList(ctx, blockIDs, nil); err != nil {
		return fmt.Errorf("committing blocks: %w", err)
	}
	return nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

var _ BlobStore = (*AzureStore)(nil)
