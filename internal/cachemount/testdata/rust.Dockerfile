FROM rust:1.80-bookworm AS builder
WORKDIR /app
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=target,sharing=private \
    cargo build --release && cp target/release/app /usr/local/bin/app

FROM debian:bookworm-slim
COPY --from=builder /usr/local/bin/app /usr/local/bin/app
CMD ["app"]
