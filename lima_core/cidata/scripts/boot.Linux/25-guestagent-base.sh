#!/bin/sh
# reverse-sshfs: the mount points, owned by the user, who mounts them (the
# host agent runs sshfs as the user over SSH, and the user may not create a
# directory such as /Users/<name> in the guest). Lima's script of this name
# also installs its guest agent, which lima-core does not have.
set -eu
if [ "${LIMA_CIDATA_MOUNTTYPE}" = reverse-sshfs ] && [ "${LIMA_CIDATA_MOUNTS:-0}" -gt 0 ]; then
	gid=$(id -g "${LIMA_CIDATA_USER}")
	i=0
	while [ "$i" -lt "${LIMA_CIDATA_MOUNTS}" ]; do
		eval "mountpoint=\${LIMA_CIDATA_MOUNTS_${i}_MOUNTPOINT}"
		mkdir -p "$mountpoint"
		chown "${LIMA_CIDATA_UID}:${gid}" "$mountpoint"
		i=$((i + 1))
	done
fi
