// Package contentstore serves BuildKit's `local` cache backend from the GitHub
// Actions cache: a containerd content.Store that bkcache hands to
// buildkitd over the BuildKit session, so bkcache itself moves the cache
// bytes and the daemon never sees the runtime token or a signed URL.
//
// The entries it reads and writes are BuildKit's gha format, byte for
// byte (cache/remotecache/gha/gha.go): layer blobs under
// "buildkit-blob-1-<digest>" and, per export scope, one index
// "index-<scope>-1-<hash8(ref)>#<n>" holding the cache config JSON with
// layer annotations. So a cache written by `type=gha` in BuildKit is
// read here, and the other way round.
//
// Export: Writer spools each blob the daemon writes to a temporary file
// and starts its upload as soon as the daemon commits it; Info answers
// "exists" for blobs the cache already holds (exact-key lookups), which
// makes the daemon skip them. Finalize waits for the uploads and writes
// the index only if every layer it names is in the cache.
//
// Import: Resolve reads the index of every readable ref scope in
// parallel, checks which layers are still there (lookup, then a one-byte
// read of the blob), and builds the OCI index
// the local importer expects; evicted layers are left out, which BuildKit
// reads as "no cached result" for the steps that need them. Layer bytes
// are fetched only when the daemon reads them, with parallel ranged reads
// ahead of the reader.
package contentstore
