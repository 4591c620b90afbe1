#!/bin/sh
# A user below uid 1000 is not in systemd-journal by default: add it, so
# `journalctl` works for it as for a regular user.
set -eu
[ "${LIMA_CIDATA_UID}" -lt 1000 ] || exit 0
getent group systemd-journal >/dev/null 2>&1 || exit 0
usermod -aG systemd-journal "${LIMA_CIDATA_USER}" 2>/dev/null ||
	adduser "${LIMA_CIDATA_USER}" systemd-journal 2>/dev/null || true
