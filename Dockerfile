# The sluice image: one static-ish binary (confluent-kafka-go bundles librdkafka) on a slim
# Debian base. Build: docker build -t sluice .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/sluice ./cmd/sluice

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sluice --create-home --shell /usr/sbin/nologin sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
# Not root: a connector, or whoever may create one, acts with the worker's rights on the files
# it may reach. Files for the file connectors go under /var/lib/sluice/files.
USER sluice:sluice
WORKDIR /var/lib/sluice
RUN mkdir -p /var/lib/sluice/files
EXPOSE 8083 9400 9401
ENTRYPOINT ["sluice"]
CMD ["worker"]
