#!/bin/sh
# With the host agent's DNS server (LIMA_CIDATA_*_DNS_LOCAL_PORT non-zero),
# queries to the user network's DNS address go to it through the gateway:
# a LIMADNS nat chain, first in PREROUTING and OUTPUT.
set -eu
[ "${LIMA_CIDATA_UDP_DNS_LOCAL_PORT:-0}" -ne 0 ] || [ "${LIMA_CIDATA_TCP_DNS_LOCAL_PORT:-0}" -ne 0 ] || exit 0
command -v iptables >/dev/null 2>&1 || exit 0
chain=LIMADNS
if ! iptables -t nat -n -L "$chain" >/dev/null 2>&1; then
	iptables -t nat -N "$chain"
	iptables -t nat -I PREROUTING 1 -j "$chain"
	iptables -t nat -I OUTPUT 1 -j "$chain"
fi
iptables -t nat -F "$chain"
for proto in udp tcp; do
	if [ "$proto" = udp ]; then port=${LIMA_CIDATA_UDP_DNS_LOCAL_PORT}; else port=${LIMA_CIDATA_TCP_DNS_LOCAL_PORT}; fi
	[ "$port" -ne 0 ] || continue
	iptables -t nat -A "$chain" -d "${LIMA_CIDATA_SLIRP_DNS}" -p "$proto" --dport 53 \
		-j DNAT --to-destination "${LIMA_CIDATA_SLIRP_GATEWAY}:${port}"
done
