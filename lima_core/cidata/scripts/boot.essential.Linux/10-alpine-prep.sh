#!/bin/sh
# Alpine: the release's main and community repositories, sudo, a user that can
# log in with a key, sshd with TCP forwarding and PAM, and acpid for the power
# button.
set -eu
[ -f /etc/alpine-release ] || exit 0
branch=$(sed -n 's/^\([0-9]*\.[0-9]*\).*/v\1/p' /etc/alpine-release)
for repo in main community; do
	line="https://dl-cdn.alpinelinux.org/alpine/${branch:-edge}/${repo}"
	grep -qx "$line" /etc/apk/repositories 2>/dev/null || echo "$line" >>/etc/apk/repositories
done
command -v sudo >/dev/null 2>&1 || apk add sudo
# a locked account ("!") cannot log in even with a key under PAM; "*" can
sed -i "s/^${LIMA_CIDATA_USER}:!/${LIMA_CIDATA_USER}:*/" /etc/shadow
if [ -f /etc/ssh/sshd_config ]; then
	sed -i -e 's/^#*AllowTcpForwarding.*/AllowTcpForwarding yes/' -e 's/^#*UsePAM.*/UsePAM yes/' /etc/ssh/sshd_config
	rc-service sshd reload 2>/dev/null || true
fi
if command -v rc-update >/dev/null 2>&1; then
	rc-update add acpid default 2>/dev/null || true
	rc-service acpid start 2>/dev/null || true
fi
