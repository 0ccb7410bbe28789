# The sluice image: one static-ish binary (confluent-kafka-go bundles librdkafka) on a slim
# Debian base. Build: docker build -t sluice .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/sluice ./cmd/sluice

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sluice /usr/local/bin/sluice
EXPOSE 8083 9400 9401
ENTRYPOINT ["sluice"]
CMD ["worker"]
