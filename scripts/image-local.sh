#!/bin/sh
# Builds the flow-proxy:local image on a machine that cannot pull from a registry: the same
# contents as the Dockerfile (Node, HAProxy, the built proxy and its production dependencies),
# assembled from this machine's own binaries and imported with `docker import`.
set -eu
cd "$(dirname "$0")/.."
# Several test files build the image at once: one build at a time, so none copies a dist/ that
# another is rewriting.
exec 9>"${TMPDIR:-/tmp}/flow-proxy-image.lock"
if command -v flock >/dev/null; then flock 9; fi
command -v haproxy >/dev/null || { echo "image:local needs haproxy installed (apt-get install haproxy)" >&2; exit 1; }
npm run --silent build

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
copy_with_libs() {
  binary=$(readlink -f "$1")
  mkdir -p "$rootfs$(dirname "$2")"
  cp "$binary" "$rootfs$2"
  ldd "$binary" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}
copy_with_libs "$(command -v node)" /usr/local/bin/node
copy_with_libs "$(command -v haproxy)" /usr/sbin/haproxy
mkdir -p "$rootfs/app" "$rootfs/cfg" "$rootfs/tmp" "$rootfs/etc"
chmod 1777 "$rootfs/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
cp -r dist package.json package-lock.json "$rootfs/app/"
(cd "$rootfs/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --silent)

tar -C "$rootfs" -c . | docker import \
  -c 'ENV STATE_DIR=/cfg CERTS_DIR=/certs' \
  -c 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/bin' \
  -c 'WORKDIR /app' \
  -c 'EXPOSE 80 443 8080' \
  -c 'ENTRYPOINT ["/usr/local/bin/node", "/app/dist/cli.js"]' \
  - flow-proxy:local-base >/dev/null
# docker import cannot set a HEALTHCHECK: a one-line build on top of the imported image does.
printf '%s\n' 'FROM flow-proxy:local-base' \
  'HEALTHCHECK --interval=5s --timeout=4s --start-period=30s CMD ["/usr/local/bin/node", "/app/dist/cli.js", "status", "--timeout", "3"]' |
  docker build -q -t flow-proxy:local - >/dev/null
echo "built flow-proxy:local"
