#!/bin/sh
# The guest agent: lima-guestagent from cidata (lima-core's, a Python 3 zip
# application) installed as <prefix>/bin/lima-guestagent when it changed, and
# run as root: a systemd service where systemd runs, else a background process
# (pid in /run/lima-guestagent.pid, log in /var/log/lima-guestagent.log). It
# reaches the host through the driver's virtio-serial or vsock port when
# lima.env names one, and always listens on /run/lima-guestagent.sock (owned
# by the user, whose SSH session the host agent may forward it through).
# Without python3 there is no agent: the host agent then forwards TCP ports
# over SSH.
#
# First, for reverse-sshfs: the mount points, owned by the user, who mounts
# them (the host agent runs sshfs as the user over SSH, and the user may not
# create a directory such as /Users/<name> in the guest).
set -eu
if [ "${LIMA_CIDATA_MOUNTTYPE}" = reverse-sshfs ] && [ "${LIMA_CIDATA_MOUNTS:-0}" -gt 0 ]; then
	gid=$(id -g "${LIMA_CIDATA_USER}")
	i=0
	while [ "$i" -lt "${LIMA_CIDATA_MOUNTS}" ]; do
		eval "mountpoint=\${LIMA_CIDATA_MOUNTS_${i}_MOUNTPOINT}"
		mkdir -p "$mountpoint"
		chown "${LIMA_CIDATA_UID}:${gid}" "$mountpoint"
		i=$((i + 1))
	done
fi

src="${LIMA_CIDATA_MNT}/lima-guestagent"
[ -f "$src" ] || exit 0

python=
for candidate in python3 /usr/libexec/platform-python; do
	if command -v "$candidate" >/dev/null 2>&1; then
		python=$(command -v "$candidate")
		break
	fi
done
if [ -z "$python" ]; then
	echo "lima-guestagent needs python3, which this guest lacks; the host agent forwards TCP ports over SSH instead"
	exit 0
fi

prefix=${LIMA_CIDATA_GUEST_INSTALL_PREFIX:-/usr/local}
bin="$prefix/bin/lima-guestagent"
changed=0
if ! cmp -s "$src" "$bin"; then
	mkdir -p "$prefix/bin"
	cp "$src" "$bin.tmp"
	chmod 755 "$bin.tmp"
	mv -f "$bin.tmp" "$bin"
	changed=1
fi

args="daemon --socket-owner ${LIMA_CIDATA_UID} --user ${LIMA_CIDATA_USER}"
if [ "${LIMA_CIDATA_VSOCK_PORT:-0}" != 0 ]; then
	args="$args --vsock-port ${LIMA_CIDATA_VSOCK_PORT}"
elif [ -n "${LIMA_CIDATA_VIRTIO_PORT:-}" ]; then
	args="$args --virtio-port ${LIMA_CIDATA_VIRTIO_PORT}"
fi
if [ "${LIMA_CIDATA_DEBUG:-false}" = true ]; then
	args="--debug $args"
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	unit=/etc/systemd/system/lima-guestagent.service
	tmp=$(mktemp)
	cat >"$tmp" <<UNIT
[Unit]
Description=lima-guestagent (lima-core's guest agent)

[Service]
ExecStart=$python $bin $args
Type=simple
Restart=on-failure
OOMPolicy=continue
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
UNIT
	if ! cmp -s "$tmp" "$unit"; then
		mv -f "$tmp" "$unit"
		chmod 644 "$unit"
		systemctl daemon-reload
		changed=1
	else
		rm -f "$tmp"
	fi
	systemctl enable lima-guestagent.service >/dev/null 2>&1
	if [ "$changed" = 1 ]; then
		systemctl restart lima-guestagent.service
	else
		systemctl start lima-guestagent.service
	fi
	exit 0
fi

pidfile=/run/lima-guestagent.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	[ "$changed" = 1 ] || exit 0
	kill "$(cat "$pidfile")" || true
	sleep 1
fi
# shellcheck disable=SC2086
nohup "$python" "$bin" $args </dev/null >>/var/log/lima-guestagent.log 2>&1 &
echo $! >"$pidfile"
