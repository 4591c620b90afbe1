#!/bin/sh
# reverse-sshfs: FUSE lets the user mount with allow_other (and AppArmor lets
# fusermount3 do it); then /run/lima-fuse-ready gets this boot's instance id.
# With the host agent's DNS, its redirection is set up again (iptables may
# have arrived just now).
set -eu
if [ "${LIMA_CIDATA_MOUNTTYPE}" = reverse-sshfs ] && [ "${LIMA_CIDATA_MOUNTS:-0}" -gt 0 ]; then
	for conf in /etc/fuse.conf /etc/fuse3.conf; do
		[ -e "$conf" ] || [ "$conf" = /etc/fuse.conf ] || continue
		grep -q '^user_allow_other' "$conf" 2>/dev/null || echo user_allow_other >>"$conf"
	done
	if [ -d /etc/apparmor.d ] && [ -e /etc/apparmor.d/fusermount3 ] && [ -d /etc/apparmor.d/local ]; then
		if ! grep -q lima /etc/apparmor.d/local/fusermount3 2>/dev/null; then
			echo '# lima: allow fusermount3 to mount on the user'"'"'s mount points' >>/etc/apparmor.d/local/fusermount3
			echo 'mount fstype=fuse.sshfs,' >>/etc/apparmor.d/local/fusermount3
			apparmor_parser -r /etc/apparmor.d/fusermount3 2>/dev/null || true
		fi
	fi
	echo "${LIMA_CIDATA_IID}" >/run/lima-fuse-ready
fi
if [ "${LIMA_CIDATA_UDP_DNS_LOCAL_PORT:-0}" -ne 0 ] || [ "${LIMA_CIDATA_TCP_DNS_LOCAL_PORT:-0}" -ne 0 ]; then
	"${LIMA_CIDATA_MNT}/boot.Linux/09-host-dns-setup.sh"
fi
