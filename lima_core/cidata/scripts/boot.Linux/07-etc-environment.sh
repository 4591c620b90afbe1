#!/bin/sh
# env: and the propagated proxies (etc_environment in cidata) become the block
# between #LIMA-START and #LIMA-END in /etc/environment; a user logged in
# before the change is logged out so new sessions see it. Then the user's
# sessions are ready for ssh: /run/lima-ssh-ready gets this boot's instance id.
set -eu
file=/etc/environment
touch "$file"
tmp=$(mktemp)
sed '/^#LIMA-START$/,/^#LIMA-END$/d' "$file" >"$tmp"
cat "${LIMA_CIDATA_MNT}/etc_environment" >>"$tmp"
if ! cmp -s "$tmp" "$file"; then
	cat "$tmp" >"$file"
	if command -v loginctl >/dev/null 2>&1 && loginctl show-user "${LIMA_CIDATA_USER}" >/dev/null 2>&1; then
		loginctl terminate-user "${LIMA_CIDATA_USER}" || true
	fi
fi
rm -f "$tmp"
echo "${LIMA_CIDATA_IID}" >/run/lima-ssh-ready
