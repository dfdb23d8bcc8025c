# The scangate image for machines that can pull a Rust image: the same layout as `make image`
# (Containerfile): a static binary, CA certificates and the user 65532 in an empty image.
# tests/image.rs checks that this file's last stage and the Containerfile agree.
# Build: docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t scangate:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY scripts/image-rootfs.sh ./scripts/
RUN RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --locked --target x86_64-unknown-linux-gnu --bin scangate \
 && scripts/image-rootfs.sh target/x86_64-unknown-linux-gnu/release/scangate /rootfs

FROM scratch
ARG VERSION
ARG REVISION
COPY --from=build /rootfs/etc/ /etc/
COPY --from=build /rootfs/usr/ /usr/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/scangate"]
LABEL org.opencontainers.image.title="scangate"
LABEL org.opencontainers.image.description="Keeps vulnerable images out of Kubernetes clusters: admission webhook and scan controller"
LABEL org.opencontainers.image.licenses="Apache-2.0"
LABEL org.opencontainers.image.source="https://github.com/scangate/scangate"
LABEL org.opencontainers.image.version="${VERSION}"
LABEL org.opencontainers.image.revision="${REVISION}"
