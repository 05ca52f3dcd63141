#!/bin/sh
# Installs the Debian packages the tests and the demo need, when they are missing:
# venv support for python3, prometheus (promtool), prometheus-alertmanager (amtool) and
# chromium (the status page test renders the page in it, headless) and docker-compose (to
# validate docker-compose.yml: no Docker engine runs here).
# As root, also the container engine the image test builds and runs the Dockerfile with:
# podman, runc and mmdebstrap (the stand-in base). Not root and without them, the image test
# is skipped and says why; as root, failing to install them fails like any other package.
set -eu
missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
engine=""
for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || engine="$engine $tool"
done
[ -z "$missing$engine" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    [ -z "$engine" ] || echo "install-system-deps: not root: the image test will be skipped (missing:$engine)" >&2
    [ -z "$missing" ] && exit 0
    echo "install-system-deps: missing Debian packages:$missing (run as root, or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$missing" ]; then
    echo "install-system-deps: installing$missing"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$engine" ]; then
    echo "install-system-deps: installing$engine"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $engine >/dev/null
fi
