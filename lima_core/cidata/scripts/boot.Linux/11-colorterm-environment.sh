#!/bin/sh
# sshd accepts COLORTERM from the client, so `lima shell` keeps the host's colours.
set -eu
conf=/etc/ssh/sshd_config.d/99-lima-colorterm.conf
[ -d /etc/ssh/sshd_config.d ] || exit 0
[ -e "$conf" ] && exit 0
echo "AcceptEnv COLORTERM" >"$conf"
if command -v systemctl >/dev/null 2>&1; then
	systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
fi
