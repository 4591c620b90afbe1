#!/bin/sh
# additionalDisks: disk i is /dev/vd<b+i>. At first use (no lima-<name> label
# yet, and format true) it gets one GPT partition and a file system (or swap);
# at every boot it is mounted at /mnt/lima-<name> (or used as swap) and grown
# to fill the disk.
set -eu
[ "${LIMA_CIDATA_DISKS:-0}" -gt 0 ] || exit 0
i=0
while [ "$i" -lt "${LIMA_CIDATA_DISKS}" ]; do
	eval "name=\${LIMA_CIDATA_DISK_${i}_NAME} device=\${LIMA_CIDATA_DISK_${i}_DEVICE}"
	eval "format=\${LIMA_CIDATA_DISK_${i}_FORMAT} fstype=\${LIMA_CIDATA_DISK_${i}_FSTYPE}"
	eval "fsargs=\${LIMA_CIDATA_DISK_${i}_FSARGS}"
	i=$((i + 1))
	fstype=${fstype:-ext4}
	dev=/dev/$device
	if [ ! -e "/dev/disk/by-label/lima-$name" ] && [ "$format" = true ]; then
		if [ "$fstype" = swap ]; then type=S; else type=L; fi
		echo "label: gpt" | sfdisk --quiet "$dev"
		echo "type=$type" | sfdisk --quiet --append "$dev"
		udevadm settle 2>/dev/null || sleep 1
		if [ "$fstype" = swap ]; then
			mkswap -L "lima-$name" "${dev}1"
		else
			# shellcheck disable=SC2086 # fsArgs are separate words
			"mkfs.$fstype" $fsargs -L "lima-$name" "${dev}1"
		fi
	fi
	if [ "$fstype" = swap ]; then
		swapon "${dev}1" || true
		continue
	fi
	mkdir -p "/mnt/lima-$name"
	mount -t "$fstype" "${dev}1" "/mnt/lima-$name"
	if command -v growpart >/dev/null 2>&1; then
		growpart "$dev" 1 >/dev/null 2>&1 || true
		case "$fstype" in
		ext*) resize2fs "${dev}1" >/dev/null 2>&1 || true ;;
		xfs) xfs_growfs "/mnt/lima-$name" >/dev/null 2>&1 || true ;;
		esac
	fi
done
