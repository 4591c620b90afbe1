#!/bin/sh
# lima-driver-wsl2: what cloud-init does elsewhere, for distros imported into WSL without it.
# Creates the guest user (uid, comment, home and shell from cidata), installs its SSH keys from
# cidata's ssh_authorized_keys, gives it passwordless sudo, and links cidata to /mnt/lima-cidata.
[ "${LIMA_CIDATA_NO_CLOUD_INIT:-}" = "1" ] || exit 0
set -eu

if ! id "${LIMA_CIDATA_USER}" >/dev/null 2>&1; then
	useradd -u "${LIMA_CIDATA_UID}" -c "${LIMA_CIDATA_COMMENT}" -d "${LIMA_CIDATA_HOME}" -m \
		-s "${LIMA_CIDATA_SHELL}" "${LIMA_CIDATA_USER}"
fi
gid=$(id -g "${LIMA_CIDATA_USER}")
ssh_dir="${LIMA_CIDATA_HOME}/.ssh"
mkdir -p "${ssh_dir}"
cp "${LIMA_CIDATA_MNT}/ssh_authorized_keys" "${ssh_dir}/authorized_keys"
chown -R "${LIMA_CIDATA_UID}:${gid}" "${ssh_dir}"
chmod 700 "${ssh_dir}"
chmod 600 "${ssh_dir}/authorized_keys"

mkdir -p /etc/sudoers.d
echo "${LIMA_CIDATA_USER} ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/99_lima_sudoers
chmod 440 /etc/sudoers.d/99_lima_sudoers

# Lima's requirement checks look for cidata at /mnt/lima-cidata.
if [ "${LIMA_CIDATA_MNT}" != "/mnt/lima-cidata" ]; then
	ln -sfn "${LIMA_CIDATA_MNT}" /mnt/lima-cidata
fi
