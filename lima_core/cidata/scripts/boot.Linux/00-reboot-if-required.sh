#!/bin/sh
# With upgradePackages on a dnf distribution: reboot when the upgrade needs it
# (the next boot runs the boot scripts again and writes lima-boot-done).
set -eu
[ "${LIMA_CIDATA_UPGRADE_PACKAGES:-}" = 1 ] || exit 0
command -v dnf >/dev/null 2>&1 || exit 0
if ! dnf needs-restarting -r >/dev/null 2>&1; then
	touch "${LIMA_REBOOT_REQUIRED}"
	systemctl reboot
fi
