# syntax=docker/dockerfile:1.12
ARG TARGETPLATFORM=${TARGETPLATFORM}
ARG BUILDPLATFORM=${BUILDPLATFORM}
ARG RUBY_VERSION="3.3.5"
ARG NODE_MAJOR_VERSION="22"
ARG DEBIAN_VERSION="bookworm"

FROM node:${NODE_MAJOR_VERSION}-${DEBIAN_VERSION}-slim AS node
FROM ruby:${RUBY_VERSION}-slim-${DEBIAN_VERSION} AS ruby
ARG TARGETPLATFORM
RUN rm -f /etc/apt/apt.conf.d/docker-clean
RUN \
  --mount=type=cache,id=apt-cache-${TARGETPLATFORM},target=/var/cache/apt,sharing=locked \
  --mount=type=cache,id=apt-lib-${TARGETPLATFORM},target=/var/lib/apt,sharing=locked \
  apt-get update && apt-get install -y --no-install-recommends curl

FROM ruby AS build
ARG TARGETPLATFORM
RUN \
  --mount=type=cache,id=apt-cache-${TARGETPLATFORM},target=/var/cache/apt,sharing=locked \
  --mount=type=cache,id=apt-lib-${TARGETPLATFORM},target=/var/lib/apt,sharing=locked \
  apt-get install -y --no-install-recommends build-essential

FROM build AS bundler
ARG TARGETARCH
COPY Gemfile* /opt/mastodon/
RUN \
  --mount=type=cache,id=bundle-cache-${TARGETARCH},target=/usr/local/bundle/cache/,sharing=shared \
  bundle install -j"$(nproc)"

FROM build AS yarn
ARG TARGETPLATFORM
COPY --from=node /usr/local/bin /usr/local/bin
RUN \
  --mount=type=cache,id=corepack-cache-${TARGETPLATFORM},target=/usr/local/share/.cache/corepack,sharing=locked \
  --mount=type=cache,id=yarn-cache-${TARGETPLATFORM},target=/usr/local/share/.cache/yarn,sharing=locked \
  yarn workspaces focus --production @mastodon/mastodon

FROM ruby AS mastodon
COPY --from=yarn /opt/mastodon /opt/mastodon/
COPY --from=bundler /usr/local/bundle/ /usr/local/bundle/
