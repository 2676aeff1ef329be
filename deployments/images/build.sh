#!/usr/bin/env bash
# Build the worker image localhost/transcribe-all-worker:cpu or :gpu, with no daemon and no registry:
#   deployments/images/build.sh cpu|gpu
# 1. a Debian bookworm rootfs from mmdebstrap (cached as a tarball and as the image
#    localhost/transcribe-all-base:bookworm: built once per machine);
# 2. the worker image on it with `buildah bud` (Containerfile.cpu|gpu): the locked dependencies in one
#    layer, the project's code in the last, so a code change rebuilds only that layer;
# 3. an OCI archive of it, build/images/transcribe-all-worker-FLAVOR.oci.tar (EXPORT=0 skips it).
# Timestamps are fixed (created times and file times): the last commit's for the code layer, the lock's for
# the dependency layers. The Python packages are locked with hashes; the Debian packages are what the mirror
# serves when the base is first built (snapshot.debian.org is not reachable here to pin them).
# Needs root and: apt-get install -y buildah podman skopeo mmdebstrap runc
set -euo pipefail
cd "$(dirname "$0")/../.."

flavor=${1:-}
[[ $flavor == cpu || $flavor == gpu ]] || { echo "usage: deployments/images/build.sh cpu|gpu" >&2; exit 2; }
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y buildah podman skopeo mmdebstrap runc" >&2; exit 2; }
done

cache=${TRANSCRIBE_ALL_IMAGE_CACHE:-/var/tmp/transcribe-all-images}
base=localhost/transcribe-all-base:bookworm
image=localhost/transcribe-all-worker:$flavor
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# the dependency layers use the lock's own commit time, so they stay cached across code commits
lock_epoch=$(git log -1 --format=%ct -- "deployments/images/lock-$flavor.txt" 2>/dev/null || true)
lock_epoch=${lock_epoch:-$SOURCE_DATE_EPOCH}
# The machine's CA bundle is mounted into RUN steps only (pip through an intercepting proxy); it is not
# copied into the image.
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

build_base() {
  local rootfs=$cache/debian-bookworm-minbase.tar container
  mkdir -p "$cache"
  if [[ ! -s $rootfs ]]; then
    echo "== mmdebstrap: Debian bookworm minbase rootfs -> $rootfs"
    mmdebstrap --variant=minbase --format=tar --include=ca-certificates,python3,python3-venv \
      --aptopt='APT::Install-Recommends "false"' bookworm "$rootfs.part"
    mv "$rootfs.part" "$rootfs"
  fi
  echo "== buildah: $base from $rootfs"
  container=$(buildah from scratch)
  buildah add "$container" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd /bin/bash "$container"
  buildah commit --timestamp "$SOURCE_DATE_EPOCH" --rm "$container" "$base" >/dev/null
}

buildah inspect --type image "$base" >/dev/null 2>&1 || build_base

echo "== buildah bud: $image (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
buildah bud --isolation chroot --network host --layers --timestamp "$SOURCE_DATE_EPOCH" \
  --ignorefile deployments/images/containerignore \
  --volume "$ca:/etc/ssl/certs/build-ca.crt:ro" \
  --build-arg BASE="$base" --build-arg LOCK_EPOCH="$lock_epoch" --build-arg SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
  -f "deployments/images/Containerfile.$flavor" -t "$image" .

if [[ ${EXPORT:-1} != 0 ]]; then
  mkdir -p build/images
  archive=build/images/transcribe-all-worker-$flavor.oci.tar
  rm -f "$archive"
  buildah push "$image" "oci-archive:$archive:transcribe-all-worker:$flavor" >/dev/null
  echo "== exported $archive ($(du -h "$archive" | cut -f1))"
fi
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
