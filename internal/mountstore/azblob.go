package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azblob keeps archives as blobs <prefix>cache-mounts/<name>/<key>.tar.zst
// in BuildKit's cache container, configured as BuildKit's azblob cache
// reads its attributes (cache/remotecache/azblob/utils.go). Only shared
// key credentials are supported.
type Azblob struct {
	c    *container.Client
	base string
}

func newAzblob(a map[string]string, getenv func(string) string) (*Azblob, error) {
	u, err := url.Parse(a["account_url"])
	if err != nil || u.Host == "" {
		return nil, errors.New("azblob: account_url is not a URL")
	}
	account := a["account_name"]
	if account == "" {
		account = getenv("BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME")
	}
	if account == "" {
		account = strings.Split(u.Hostname(), ".")[0]
	}
	cont := a["container"]
	if cont == "" {
		cont = getenv("BUILDKIT_AZURE_STORAGE_CONTAINER")
	}
	if cont == "" {
		cont = "buildkit-cache"
	}
	if a["secret_access_key"] == "" || a["name"] == "" {
		return nil, errors.New("azblob: cache mounts need secret_access_key and name")
	}
	cred, err := azblob.NewSharedKeyCredential(account, a["secret_access_key"])
	if err != nil {
		return nil, fmt.Errorf("azblob: %w", err)
	}
	svc, err := azblob.NewClientWithSharedKeyCredential(a["account_url"], cred, nil)
	if err != nil {
		return nil, fmt.Errorf("azblob: %w", err)
	}
	return &Azblob{
		c:    svc.ServiceClient().NewContainerClient(cont),
		base: objectBase(a),
	}, nil
}

func (z *Azblob) String() string { return "azblob " + z.base }

func (z *Azblob) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	resp, err := z.c.NewBlockBlobClient(z.base+ArchiveName(key)).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("azblob: %w", err)
	}
	size := int64(-1)
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	return resp.Body, size, nil
}

func (z *Azblob) Put(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	_, err := z.c.NewBlockBlobClient(z.base+ArchiveName(key)).UploadStream(ctx, section(r, size), nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if _, cerr := z.c.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("azblob: creating the container: %w", cerr)
		}
		_, err = z.c.NewBlockBlobClient(z.base+ArchiveName(key)).UploadStream(ctx, section(r, size), nil)
	}
	if err != nil {
		return fmt.Errorf("azblob: %w", err)
	}
	return nil
}
