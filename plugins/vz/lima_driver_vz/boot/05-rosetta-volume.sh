#!/bin/bash
# lima-driver-vz: make Rosetta usable in the guest when vmOpts.vz.rosetta.enabled is set.
# Mounts the host's Rosetta share (virtiofs tag vz-rosetta) at /mnt/lima-rosetta, registers or
# unregisters it with binfmt_misc according to LIMA_CIDATA_ROSETTA_BINFMT, and runs rosettad
# (Rosetta's AOT cache) when the host offers it.
set -eu -o pipefail

[ "${LIMA_CIDATA_ROSETTA_ENABLED:-false}" = "true" ] || exit 0

mnt=/mnt/lima-rosetta
mkdir -p "$mnt"
if ! grep -qs " $mnt " /proc/mounts && ! mount -t virtiofs vz-rosetta "$mnt"; then
	# The host warned why it could not share Rosetta (see the host agent's log); the VM runs without it.
	echo "lima-driver-vz: the host did not share Rosetta (virtiofs tag vz-rosetta); skipping it" >&2
	exit 0
fi

if [ -f /etc/alpine-release ]; then
	rc-service procfs start --ifnotstarted
	rc-service qemu-binfmt stop --ifexists --ifstarted
fi

entry=/proc/sys/fs/binfmt_misc/rosetta
conf=/usr/lib/binfmt.d/rosetta.conf
# x86_64 ELF executables (magic and mask of the ELF header) go to Rosetta; flags OCF.
rule=":rosetta:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00:\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:${mnt}/rosetta:OCF"
if [ "${LIMA_CIDATA_ROSETTA_BINFMT:-false}" = "true" ]; then
	[ -f "$entry" ] || echo "$rule" >/proc/sys/fs/binfmt_misc/register
	# With systemd-binfmt, a binfmt.d entry keeps Rosetta ahead of qemu-user-static after reboots.
	if [ -d "$(dirname "$conf")" ] && [ ! -f "$conf" ]; then echo "$rule" >"$conf"; fi
else
	[ ! -f "$entry" ] || echo -1 >"$entry"
	[ ! -f "$conf" ] || rm -f "$conf"
fi

cache=/var/cache/rosettad
socket_default=${cache}/uds/rosetta.sock
socket_expected=/run/rosettad/rosetta.sock
if [ -x "${mnt}/rosettad" ]; then
	if [ -f /sbin/openrc-run ]; then
		cat >/etc/init.d/rosettad <<EOS
#!/sbin/openrc-run
name="rosettad"
description="Rosetta AOT caching daemon"
required_files=${mnt}/rosettad
command=${mnt}/rosettad
command_args="daemon ${cache}"
command_background=true
pidfile=/run/rosettad.pid
start_pre() { rm -f "${socket_default}"; }
start_post() {
	while ! chmod -f go+w "${socket_default}"; do sleep 1; done
	mkdir -p "$(dirname "${socket_expected}")"
	ln -sf "${socket_default}" "${socket_expected}"
}
EOS
		chmod 755 /etc/init.d/rosettad
		rc-update add rosettad default
		rc-service rosettad start
	else
		cat >/etc/systemd/system/rosettad.service <<EOS
[Unit]
Description=Rosetta AOT caching daemon
RequiresMountsFor=${mnt}
[Service]
RuntimeDirectory=rosettad
CacheDirectory=rosettad
ExecStartPre=rm -f ${socket_default}
ExecStart=${mnt}/rosettad daemon ${cache}
ExecStartPost=sh -c 'while ! chmod -f go+w ${socket_default}; do sleep 1; done; ln -sf ${socket_default} ${socket_expected}'
OOMPolicy=continue
OOMScoreAdjust=-500
[Install]
WantedBy=default.target
EOS
		systemctl is-enabled rosettad >/dev/null 2>&1 || systemctl enable --now rosettad
	fi
	# Containers reach the cache through a CDI device (nerdctl, buildkit).
	mkdir -p /etc/cdi /var/run/cdi /etc/buildkit/cdi
	cat >/etc/cdi/rosetta.yaml <<EOS
cdiVersion: "0.6.0"
kind: "lima-vm.io/rosetta"
devices:
- name: cached
  containerEdits:
    mounts:
    - hostPath: ${socket_default}
      containerPath: ${socket_expected}
      options: [bind]
annotations:
  org.mobyproject.buildkit.device.autoallow: true
EOS
	mkdir -p "${LIMA_CIDATA_HOME}/.config/cdi"
	ln -sf /etc/cdi/rosetta.yaml "${LIMA_CIDATA_HOME}/.config/cdi/"
	chown -R "${LIMA_CIDATA_USER}" "${LIMA_CIDATA_HOME}/.config"
else
	[ ! -f /etc/cdi/rosetta.yaml ] || rm -f /etc/cdi/rosetta.yaml
	[ ! -L "${LIMA_CIDATA_HOME}/.config/cdi/rosetta.yaml" ] || rm -f "${LIMA_CIDATA_HOME}/.config/cdi/rosetta.yaml"
fi
