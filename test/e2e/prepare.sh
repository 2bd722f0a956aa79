#!/usr/bin/env bash
# Installs the Debian packages the end-to-end suite needs when they are missing (needs root).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "the e2e suite needs root (network namespaces, containerd)" >&2; exit 1; fi
packages=(containerd docker-registry runc iproute2 strace)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
