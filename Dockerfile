# The bkcache CLI in a small image:
#
#   docker buildx build -t bkcache .
#   docker run --rm bkcache plan --help
#
# Modules are downloaded with a /go/pkg/mod cache mount and compiled with a
# /root/.cache/go-build cache mount, so a rebuild after a one-file change
# compiles one package (bkcache carries both mounts between CI runs).
# GO_IMAGE is any image with Go 1.26 at /usr/local/go (the benchmarks pass
# a Debian one built by scripts/bench-images). GOPROXY and friends can be
# passed as build args where the module proxy is not the default.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
ARG GOPROXY
ARG GOSUMDB
ARG GOPRIVATE
ARG GONOSUMDB
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bkcache .

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bkcache /usr/local/bin/bkcache
ENTRYPOINT ["/usr/local/bin/bkcache"]
