#!/usr/bin/env bash
# The files of the scangate image, laid out as in its root: the static binary, CA certificates and
# the non-root user 65532. `make image` (buildah, Containerfile) and the Dockerfile's build stage
# both copy this directory into an empty image, so the two produce the same layout.
#
#   scripts/image-rootfs.sh BINARY OUT_DIR [CA_BUNDLE]
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 BINARY OUT_DIR [CA_BUNDLE]" >&2
  exit 2
fi
binary=$1 out=$2 ca=${3:-/etc/ssl/certs/ca-certificates.crt}

if [[ ! -f $ca ]]; then
  echo "error: no CA bundle at $ca: install Debian's ca-certificates (apt-get install -y ca-certificates)" >&2
  exit 1
fi
# A scratch image has no dynamic loader: refuse a binary that needs one.
if readelf -l "$binary" | grep -q 'Requesting program interpreter'; then
  echo "error: $binary is dynamically linked; build it with RUSTFLAGS='-C target-feature=+crt-static'" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out/etc/ssl/certs" "$out/usr/local/bin"
install -m 0755 "$binary" "$out/usr/local/bin/scangate"
# Symbols only: panics still print their message and location.
strip --strip-all "$out/usr/local/bin/scangate"
install -m 0644 "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
# The same names and ids as distroless's nonroot user, so manifests written for it still apply.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$out/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' > "$out/etc/group"
chmod 0644 "$out/etc/passwd" "$out/etc/group"
