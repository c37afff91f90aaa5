FROM alpine AS base
RUN adduser -D -u 1000 app
FROM base
RUN --mount=type=cache,id=apk,target=/var/cache/apk,sharing=locked apk add git
USER app
RUN --mount=type=cache,target=/home/app/.cache,uid=1000 ls /home/app/.cache
