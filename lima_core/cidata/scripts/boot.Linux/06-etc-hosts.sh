#!/bin/sh
# host.lima.internal names the host (the user network's gateway) in /etc/hosts.
set -eu
[ -n "${LIMA_CIDATA_SLIRP_GATEWAY:-}" ] || exit 0
tmp=$(mktemp)
grep -v '[[:space:]]host\.lima\.internal\([[:space:]]\|$\)' /etc/hosts >"$tmp" || true
printf '%s\thost.lima.internal\n' "${LIMA_CIDATA_SLIRP_GATEWAY}" >>"$tmp"
cat "$tmp" >/etc/hosts
rm -f "$tmp"
