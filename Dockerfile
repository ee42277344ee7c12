# tandem's container image: a static binary on a distroless base, run as
# a non-root user. Build: docker build --build-arg VERSION=v0.1.0 -t tandem .
# docs/operations.md ("Container image") says how to run it; compose.yaml
# runs it with PostgreSQL.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same build as a release (docs/operations.md): static (pure Go: the
# SQLite driver needs no cgo), -trimpath, the version stamped.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tandem ./cmd/tandem

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tandem /usr/local/bin/tandem
# The SQLite file lives here by default (store.dsn: file:/data/tandem.db);
# mount a volume on it.
WORKDIR /data
USER nonroot:nonroot
EXPOSE 8080
ENV TANDEM_CONFIG=/etc/tandem/tandem.yaml
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/tandem", "health", "--server", "http://127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["serve"]
