#!/usr/bin/env bash
# Installs the Debian packages the end-to-end suite needs when they are missing (needs root).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "the e2e suite needs root (network namespaces, containerd)" >&2; exit 1; fi
bash "$(dirname "$0")/../support/install-packages.sh" containerd docker-registry runc iproute2 strace
