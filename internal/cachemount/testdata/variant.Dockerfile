ARG VARIANT=alpine
FROM alpine:3.20 AS base-alpine
RUN --mount=type=cache,target=/var/cache/apk apk add gcc

FROM debian:bookworm AS base-debian
RUN --mount=type=cache,target=/var/cache/apt apt-get update

FROM base-${VARIANT}
COPY --from=${VARIANT} /etc/os-release /os-release
RUN --mount=type=cache,target=/final true
