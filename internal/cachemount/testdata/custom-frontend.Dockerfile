# syntax=example.com/frontends/dockerfile-plus:1
FROM alpine
RUN --mount=type=cache,target=/root/.cache true
