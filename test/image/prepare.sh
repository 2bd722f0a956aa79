#!/usr/bin/env bash
# Installs what the image suite needs (podman and runc to build and run images, debootstrap for the
# base image; containerd and docker-registry for the chart-like run), then makes the local base
# image if it is not there yet. Needs root.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "the image suite needs root (podman, containerd)" >&2; exit 1; fi
here=$(dirname "$0")
bash "$here/../support/install-packages.sh" podman runc debootstrap containerd docker-registry ca-certificates
bash "$here/base-image.sh"
