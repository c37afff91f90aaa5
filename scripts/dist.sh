#!/usr/bin/env bash
# Cross-compile the bkcache binaries the action's dist/main.js starts:
#   scripts/dist.sh [VERSION]      (default: git describe, else "dev")
# Writes dist/bkcache-<os>-<arch>[.exe] and dist/SHA256SUMS. The binaries are
# git-ignored: the release workflow force-adds them to release commits only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
go="${GO:-go}"
targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64)

mkdir -p dist
rm -f dist/bkcache-* dist/SHA256SUMS

for target in "${targets[@]}"; do
	goos="${target%/*}" goarch="${target#*/}"
	out="dist/bkcache-${goos}-${goarch}"
	[[ "$goos" == windows ]] && out+=".exe"
	echo "building ${out} (${version})" >&2
	CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" \
		"$go" build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" .
done

(cd dist && sha256sum bkcache-* > SHA256SUMS)
cat dist/SHA256SUMS
