#!/bin/sh
# Alpine: root may use sudo without a password, and the image's own "alpine"
# user (uid 1000) gives way to Lima's user: it is deleted and cloud-init runs
# again after a reboot.
set -eu
[ -f /etc/alpine-release ] || exit 0
if [ -d /etc/sudoers.d ] && [ ! -e /etc/sudoers.d/00-lima-root ]; then
	echo 'root ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/00-lima-root
	chmod 440 /etc/sudoers.d/00-lima-root
fi
if [ "${LIMA_CIDATA_USER}" != alpine ] && [ "$(id -u alpine 2>/dev/null || true)" = 1000 ]; then
	deluser --remove-home alpine
	cloud-init clean --logs
	touch "${LIMA_REBOOT_REQUIRED}"
	reboot
fi
