ARG ARCH=${TARGETARCH}
FROM alpine
ARG ARCH
RUN --mount=type=cache,id=c-$ARCH,target=/c true
