# The scangate image: one binary, non-root, on a distroless base (glibc and CA certificates).
# Build: docker build -t ghcr.io/scangate/scangate:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin scangate && strip target/release/scangate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/scangate /usr/local/bin/scangate
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/scangate"]
