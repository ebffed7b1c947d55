# syntax=docker/dockerfile:1
#
# One image recipe for every commentflow service. The build context is the
# repository root, because the services build inside the Go workspace (go.work)
# and import the schemas and platform modules from it.
#
#   docker build --build-arg SERVICE=producer --build-arg VERSION=1.2.3 -t commentflow/producer:1.2.3 .
#
# SERVICE names a workspace module that has a main package at
# <SERVICE>/cmd/<SERVICE> (producer, consumer, gateway). docker-compose.yml
# passes it for each service. devstack/stackfile tests this file.

FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
WORKDIR /src

# Module graph first, so the dependency download layer is reused until a
# go.mod or go.sum changes. Keep this list equal to the "use" list of go.work
# (a test checks it). The go.* wildcard copies go.mod and, where the module has
# one, go.sum (a wildcard that matches nothing is not an error).
COPY go.work* ./
COPY schemas/go.* ./schemas/
COPY platform/go.* ./platform/
COPY producer/go.* ./producer/
COPY consumer/go.* ./consumer/
COPY gateway/go.* ./gateway/
COPY devstack/go.* ./devstack/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

# Declared after the shared layers so that every service reuses them.
ARG SERVICE
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    : "${SERVICE:?set the build argument SERVICE, for example --build-arg SERVICE=producer}" && \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/app "./${SERVICE}/cmd/${SERVICE}"

# Static, non-root runtime: no shell, no package manager, uid/gid 65532.
FROM gcr.io/distroless/static-debian13:nonroot
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="commentflow-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/app /app
USER nonroot:nonroot
ENTRYPOINT ["/app"]
