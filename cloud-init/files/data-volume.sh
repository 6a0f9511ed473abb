# Mounts the database's own EBS volume before any package creates the data directory.
# Runs from bootcmd on every boot (so it cannot be a file from write_files): waits, bounded, for
# the attachment, makes a filesystem only on a blank volume, then mounts it through fstab.
set -euo pipefail
device="$1"
mountpoint="$2"
for _ in $(seq 1 90); do
  [ -e "$device" ] && break
  sleep 2
done
if [ ! -e "$device" ]; then
  echo "webstack: data volume $device did not appear within 180 s" >&2
  exit 1
fi
if ! blkid "$device" >/dev/null 2>&1; then
  mkfs.ext4 -q -L webstack-data "$device"
  fresh=1
fi
uuid=$(blkid -s UUID -o value "$device")
mkdir -p "$mountpoint"
if ! grep -q "^UUID=$uuid " /etc/fstab; then
  echo "UUID=$uuid $mountpoint ext4 defaults,nofail,x-systemd.device-timeout=180s 0 2" >>/etc/fstab
fi
mountpoint -q "$mountpoint" || mount "$mountpoint"
# An empty data directory is what the database's installer expects.
if [ "${fresh:-0}" = 1 ]; then rmdir "$mountpoint/lost+found"; fi
