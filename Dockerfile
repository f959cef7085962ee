# mynet's runtime image, from which `make plugin` takes the managed plugin's
# rootfs. Both base images are build arguments: with a registry the defaults
# are pulled; offline, `make plugin` passes images it makes from the host
# (packaging/base-images.sh).
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mynet .

FROM ${RUNTIME_IMAGE}
# Both iptables backends: mynet runs the one the host's rules are in.
RUN if ! command -v xtables-nft-multi >/dev/null || ! command -v xtables-legacy-multi >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*; \
    fi \
 && mkdir -p /run/docker/plugins /host/var/lib /host/run /host/docker
COPY --from=build /out/mynet /usr/bin/mynet
ENTRYPOINT ["/usr/bin/mynet"]
