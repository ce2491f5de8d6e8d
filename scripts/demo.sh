#!/usr/bin/env bash
# The main job on the bundled demo image: inspect it like qemu-img would, then
# mount it with qimg and loop-mount the ext4 filesystem inside its first
# partition, read-only, straight out of the compressed qcow2.
set -euo pipefail
cd "$(dirname "$0")/.."
qimg=./bin/run.js
image=fixtures/demo.qcow2
mp=$(mktemp -d /tmp/qimg-demo.XXXXXX)
fsdir=$(mktemp -d /tmp/qimg-demo-fs.XXXXXX)
cleanup () {
  mountpoint -q "$fsdir" && umount "$fsdir"
  mountpoint -q "$mp" && $qimg umount "$mp"
  rmdir "$fsdir" "$mp" 2>/dev/null || true
}
trap cleanup EXIT

echo "\$ qimg info $image"
$qimg info "$image"
echo
echo "\$ qimg check $image"
$qimg check "$image"
echo
echo "\$ qimg mount $image $mp"
$qimg mount "$image" "$mp"
ls -l "$mp" "$mp/partitions"
echo
echo "\$ mount -o ro,loop $mp/partitions/1.raw $fsdir"
mount -o ro,loop "$mp/partitions/1.raw" "$fsdir"
ls -lR "$fsdir" | grep -v '^total'
echo
echo "\$ cat $fsdir/hello.txt"
cat "$fsdir/hello.txt"
