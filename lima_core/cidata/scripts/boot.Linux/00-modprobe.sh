#!/bin/sh
# Kernel modules that containers, networks and FUSE mounts need later; a module
# the kernel lacks (or has built in) is not an error.
for module in fuse tun tap bridge veth ip_tables ip6_tables iptable_nat ip6table_nat iptable_filter \
	ip6table_filter nf_tables x_tables xt_MASQUERADE xt_addrtype xt_comment xt_conntrack xt_mark \
	xt_multiport xt_nat xt_tcpudp overlay; do
	modprobe "$module" >/dev/null 2>&1 || true
done
exit 0
