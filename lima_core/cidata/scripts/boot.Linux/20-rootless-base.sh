#!/bin/sh
# What rootless containers and user services need (systemd guests only): the
# home owned by the user, <prefix>/bin and <prefix>/sbin on the user's PATH,
# cgroup delegation, unprivileged user namespaces, ping and low ports, a
# subordinate id range, and lingering (user services run without a login).
set -eu
[ -d /run/systemd/system ] || exit 0
if [ "$(stat -c %u "${LIMA_CIDATA_HOME}")" = 0 ]; then
	chown "${LIMA_CIDATA_USER}" "${LIMA_CIDATA_HOME}"
fi
prefix=${LIMA_CIDATA_GUEST_INSTALL_PREFIX:-/usr/local}
for rc in .profile .bashrc .zshrc; do
	f="${LIMA_CIDATA_HOME}/$rc"
	[ -e "$f" ] || [ "$rc" = .profile ] || continue
	grep -q '^# Lima BEGIN$' "$f" 2>/dev/null && continue
	{
		echo '# Lima BEGIN'
		echo '# Make the tools Lima installs in the guest (nerdctl, ...) available'
		echo "PATH=\"\$PATH:${prefix}/bin:${prefix}/sbin\""
		echo '# Lima END'
	} >>"$f"
	chown "${LIMA_CIDATA_USER}" "$f"
done
mkdir -p /etc/systemd/system/user@.service.d
if [ ! -e /etc/systemd/system/user@.service.d/lima.conf ]; then
	printf '[Service]\nDelegate=yes\n' >/etc/systemd/system/user@.service.d/lima.conf
	systemctl daemon-reload
fi
cat >/etc/sysctl.d/99-lima.conf <<'CONF'
kernel.unprivileged_userns_clone=1
net.ipv4.ping_group_range = 0 2147483647
net.ipv4.ip_unprivileged_port_start=0
CONF
sysctl --system >/dev/null 2>&1 || true
for f in /etc/subuid /etc/subgid; do
	touch "$f"
	if ! grep -q "^${LIMA_CIDATA_USER}:" "$f"; then
		start=524288
		[ "${LIMA_CIDATA_UID}" -lt "$start" ] || start=$((LIMA_CIDATA_UID + 1))
		echo "${LIMA_CIDATA_USER}:${start}:1073741824" >>"$f"
	fi
done
loginctl enable-linger "${LIMA_CIDATA_USER}" 2>/dev/null || true
