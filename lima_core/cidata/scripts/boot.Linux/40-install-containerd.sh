#!/bin/sh
# containerd (containerd.system / containerd.user): nerdctl-full from cidata
# installed under the guest install prefix (a newer one replaces an older),
# then containerd, BuildKit and the stargz snapshotter run as system services,
# or rootless for the user. Needs systemd: without it there is nothing to do.
set -eu
[ "${LIMA_CIDATA_CONTAINERD_SYSTEM:-}" = 1 ] || [ "${LIMA_CIDATA_CONTAINERD_USER:-}" = 1 ] || exit 0
[ -d /run/systemd/system ] || exit 0
prefix=${LIMA_CIDATA_GUEST_INSTALL_PREFIX}
archive="${LIMA_CIDATA_MNT}/${LIMA_CIDATA_CONTAINERD_ARCHIVE}"

user_run() {
	sudo -iu "${LIMA_CIDATA_USER}" "XDG_RUNTIME_DIR=/run/user/${LIMA_CIDATA_UID}" "$@"
}

tmp=$(mktemp -d)
tar -xzf "$archive" -C "$tmp" bin/nerdctl
if [ ! -x "$prefix/bin/nerdctl" ] || [ "$tmp/bin/nerdctl" -nt "$prefix/bin/nerdctl" ]; then
	if [ -x "$prefix/bin/nerdctl" ]; then
		# an upgrade: stop what runs the old binaries first
		systemctl disable --now containerd buildkit stargz-snapshotter 2>/dev/null || true
		if [ -x "$prefix/bin/containerd-rootless-setuptool.sh" ]; then
			user_run "$prefix/bin/containerd-rootless-setuptool.sh" uninstall 2>/dev/null || true
		fi
	fi
	mkdir -p "$prefix"
	tar -xzf "$archive" -C "$prefix"
	mkdir -p /etc/bash_completion.d
	"$prefix/bin/nerdctl" completion bash >/etc/bash_completion.d/nerdctl 2>/dev/null || true
fi
rm -rf "$tmp"

if [ "${LIMA_CIDATA_CONTAINERD_SYSTEM:-}" = 1 ]; then
	if [ ! -e /etc/containerd/config.toml ]; then
		mkdir -p /etc/containerd
		cat >/etc/containerd/config.toml <<'TOML'
version = 2
imports = ["/etc/containerd/conf.d/*.toml"]
[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = true
[proxy_plugins]
  [proxy_plugins."stargz"]
    type = "snapshot"
    address = "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock"
TOML
	fi
	if [ ! -e /etc/buildkit/buildkitd.toml ]; then
		mkdir -p /etc/buildkit
		cat >/etc/buildkit/buildkitd.toml <<'TOML'
[worker.oci]
  enabled = false
[worker.containerd]
  enabled = true
  namespace = "default"
  snapshotter = "overlayfs"
TOML
	fi
	if [ -d "$prefix/lib/systemd/system" ]; then
		cp -n "$prefix"/lib/systemd/system/*.service /etc/systemd/system/ 2>/dev/null || true
		systemctl daemon-reload
	fi
	systemctl enable --now containerd buildkit stargz-snapshotter
fi

if [ "${LIMA_CIDATA_CONTAINERD_USER:-}" = 1 ]; then
	config="${LIMA_CIDATA_HOME}/.config/containerd/config.toml"
	if [ ! -e "$config" ]; then
		mkdir -p "$(dirname "$config")"
		cat >"$config" <<'TOML'
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  enable_cdi = true
[proxy_plugins]
  [proxy_plugins."fuse-overlayfs"]
    type = "snapshot"
    address = "/run/user/UID/containerd-fuse-overlayfs.sock"
  [proxy_plugins."stargz"]
    type = "snapshot"
    address = "/run/user/UID/containerd-stargz-grpc/containerd-stargz-grpc.sock"
TOML
		sed -i "s,/run/user/UID/,/run/user/${LIMA_CIDATA_UID}/," "$config"
		chown -R "${LIMA_CIDATA_USER}" "${LIMA_CIDATA_HOME}/.config"
	fi
	# Ubuntu restricts unprivileged user namespaces: rootlesskit needs its AppArmor profile.
	if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ] && [ -d /etc/apparmor.d ] &&
		[ ! -e /etc/apparmor.d/lima-rootlesskit ]; then
		cat >/etc/apparmor.d/lima-rootlesskit <<EOP
abi <abi/4.0>,
include <tunables/global>
"$prefix/bin/rootlesskit" flags=(unconfined) {
  userns,
}
EOP
		apparmor_parser -r /etc/apparmor.d/lima-rootlesskit 2>/dev/null || true
	fi
	# the user's systemd, which the rootless services run under (started by lingering; started again
	# here if it failed, e.g. while 30-install-packages.sh was replacing PAM modules)
	systemctl start "user@${LIMA_CIDATA_UID}.service" 2>/dev/null || true
	waited=0
	until [ -e "/run/user/${LIMA_CIDATA_UID}/systemd/private" ]; do
		if [ "$waited" -ge 120 ]; then
			echo "the systemd user session of ${LIMA_CIDATA_USER} did not start within 120 s" >&2
			exit 1
		fi
		sleep 1
		waited=$((waited + 1))
	done
	user_run systemctl --user enable --now dbus.socket 2>/dev/null || true
	selinux=""
	if command -v getenforce >/dev/null 2>&1 && [ "$(getenforce)" = Enforcing ]; then
		selinux=1
		setenforce 0
	fi
	user_run "$prefix/bin/containerd-rootless-setuptool.sh" install
	user_run "$prefix/bin/containerd-rootless-setuptool.sh" install-buildkit-containerd
	if grep -q fuse-overlayfs "${LIMA_CIDATA_HOME}/.config/nerdctl/nerdctl.toml" 2>/dev/null; then
		user_run "$prefix/bin/containerd-rootless-setuptool.sh" install-fuse-overlayfs
	fi
	if "${LIMA_CIDATA_MNT}/util/compare_version.sh" "$(uname -r | cut -d- -f1)" -ge 5.13; then
		user_run "$prefix/bin/containerd-rootless-setuptool.sh" install-stargz || true
	fi
	[ -z "$selinux" ] || setenforce 1
fi
