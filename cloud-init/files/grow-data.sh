#!/bin/bash
# Grows the data volume's ext4 filesystem to its volume's size, mounted (ext4 grows online): when
# `dataVolumeGiB` grew the EBS volume in place, the node sees a larger device within minutes and
# webstack-grow-data.timer (at boot, then every two minutes) catches up. Silent while there is
# nothing to grow.
# Usage: webstack-grow-data MOUNTPOINT
set -euo pipefail
mountpoint="$1"

log() { echo "webstack-grow-data: $*" >&2; }

if ! device=$(findmnt --noheadings --output SOURCE --mountpoint "$mountpoint"); then
  log "nothing is mounted at $mountpoint"
  exit 1
fi
superblock=$(dumpe2fs -h "$device" 2>/dev/null)
block_size=$(awk -F: '$1 == "Block size" { print $2 + 0 }' <<<"$superblock")
blocks=$(awk -F: '$1 == "Block count" { print $2 + 0 }' <<<"$superblock")
if [ -z "$block_size" ] || [ -z "$blocks" ]; then
  log "dumpe2fs gave no block size and count for $device"
  exit 1
fi
device_blocks=$(($(blockdev --getsize64 "$device") / block_size))
if [ "$device_blocks" -le "$blocks" ]; then exit 0; fi
log "$device holds $device_blocks blocks of $block_size bytes, its filesystem $blocks: growing it"
resize2fs "$device"
log "$mountpoint is now $(df --human-readable --output=size "$mountpoint" | tail -n 1 | tr -d ' ')"
