#!/bin/sh
# The dependency provisions, then the packages Lima's features need in the
# guest, installed only when missing: sshfs (reverse-sshfs mounts), iptables
# (containerd, the host agent's DNS), uidmap/fuse3/dbus-user-session
# (containerd for the user), rsync (`lima copy`).
set -eu
code=0
if [ -d "${LIMA_CIDATA_MNT}/provision.dependency" ]; then
	for f in "${LIMA_CIDATA_MNT}"/provision.dependency/*; do
		[ -f "$f" ] || continue
		n=${f##*/}
		echo "LIMA $(date -Iseconds)| Executing $f"
		if "$f"; then :; else
			status=$?
			echo "LIMA $(date -Iseconds)| WARNING: Failed to execute $f (exit status $status)"
			echo "provision dependency/$n $status /var/log/lima-boot/boot.Linux_30-install-packages.sh.log" >>/run/lima-boot-errors
			code=1
		fi
	done
fi
[ "$code" = 0 ] || exit "$code"
[ "${LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION:-}" != 1 ] || exit 0

need() { command -v "$1" >/dev/null 2>&1 && return 1 || return 0; }
want=""
if [ "${LIMA_CIDATA_MOUNTTYPE}" = reverse-sshfs ] && [ "${LIMA_CIDATA_MOUNTS:-0}" -gt 0 ] && need sshfs; then
	want="$want sshfs"
fi
if { [ "${LIMA_CIDATA_CONTAINERD_SYSTEM:-}" = 1 ] || [ "${LIMA_CIDATA_CONTAINERD_USER:-}" = 1 ] ||
	[ "${LIMA_CIDATA_UDP_DNS_LOCAL_PORT:-0}" -ne 0 ]; } && need iptables; then
	want="$want iptables"
fi
if [ "${LIMA_CIDATA_CONTAINERD_USER:-}" = 1 ]; then
	need newuidmap && want="$want uidmap"
	need fusermount3 && want="$want fuse3"
	[ -e /usr/lib/systemd/user/dbus.socket ] || want="$want dbus-user-session"
fi
need rsync && want="$want rsync"
[ -n "$want" ] || exit 0

if [ -x "$(command -v apt-get 2>/dev/null)" ] && head -c 4 "$(command -v apt-get)" | grep -q ELF; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $want
elif command -v dnf >/dev/null 2>&1; then
	dnf install -y $(echo "$want" | sed -e 's/\bsshfs\b/fuse-sshfs/' -e 's/\buidmap\b/shadow-utils/' -e 's/\bdbus-user-session\b//')
elif command -v pacman >/dev/null 2>&1; then
	pacman -Sy --noconfirm --needed $(echo "$want" | sed -e 's/\buidmap\b//' -e 's/\bdbus-user-session\b//' -e 's/\biptables\b//')
elif command -v zypper >/dev/null 2>&1; then
	zypper --non-interactive install $(echo "$want" | sed -e 's/\buidmap\b//' -e 's/\bdbus-user-session\b//')
elif command -v apk >/dev/null 2>&1; then
	apk add $(echo "$want" | sed -e 's/\buidmap\b//' -e 's/\bfuse3\b//' -e 's/\bdbus-user-session\b//')
else
	echo "LIMA $(date -Iseconds)| WARNING: no package manager found to install:$want"
fi
