#!/usr/bin/env bash
# A local registry with one small image, for trying Mill out (README "Quick start"):
# starts Debian's docker-registry on 127.0.0.1:5000 (storage in $DIR, default
# /var/lib/mill-demo/registry) and pushes 127.0.0.1:5000/hello:v1, v2 and v3, a static
# busybox httpd on port 8080 (v3 is a broken release that serves nothing). Built with umoci, pushed with skopeo;
# needs no internet. Idempotent. Stop the registry with: pkill -f mill-demo/registry.yml
set -euo pipefail

DIR=${DIR:-/var/lib/mill-demo}
ADDR=${ADDR:-127.0.0.1:5000}
for tool in docker-registry umoci skopeo busybox; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$DIR/registry"

cat >"$DIR/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $DIR/registry
http:
  addr: $ADDR
YML
if ! curl -fsS "http://$ADDR/v2/" >/dev/null 2>&1; then
  nohup docker-registry serve "$DIR/registry.yml" >"$DIR/registry.log" 2>&1 &
  for _ in $(seq 50); do curl -fsS "http://$ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
fi
curl -fsS "http://$ADDR/v2/" >/dev/null || { echo "the registry did not start; see $DIR/registry.log" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
umoci init --layout layout
# v1 and v2 answer "hello from mill vN" at /; v3 is a bad release: it serves nothing,
# so a health check of / fails (what a rolled-back deploy looks like).
for v in v1 v2 v3; do
  umoci new --image "layout:$v"
  rm -rf bundle
  umoci unpack --rootless --image "layout:$v" bundle >/dev/null
  mkdir -p bundle/rootfs/bin bundle/rootfs/www
  cp "$(command -v busybox)" bundle/rootfs/bin/busybox
  for app in sh httpd ls cat echo; do ln -sf busybox "bundle/rootfs/bin/$app"; done
  [[ $v == v3 ]] || echo "hello from mill $v" >bundle/rootfs/www/index.html
  umoci repack --image "layout:$v" bundle
  umoci config --image "layout:$v" --config.entrypoint /bin/httpd \
    --config.cmd=-f --config.cmd=-v --config.cmd=-p --config.cmd=8080 --config.cmd=-h \
    --config.cmd=/www --config.exposedports 8080/tcp --config.env PATH=/bin
  skopeo copy --quiet --dest-tls-verify=false "oci:layout:$v" "docker://$ADDR/hello:$v"
done
echo "pushed $ADDR/hello:v1, v2 and v3 (busybox httpd on :8080; v3 serves nothing)"
