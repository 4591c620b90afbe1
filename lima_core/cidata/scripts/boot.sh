#!/bin/sh
# The boot script of Lima's cidata, run as root at every boot: cloud-init's
# per-boot wrapper (or a driver's own init) mounts the volume at
# $LIMA_CIDATA_MNT and execs this.
#
# Order: boot.essential.<OS>/*, boot.<OS>/* (not in plain mode), then the
# provisions: data, system, user (lima-core refuses yq provisions). Each
# failure is logged, recorded in $RUN/lima-boot-errors (one line: "<kind>
# <name> <status> [log]", read by lima-core's host agent) and makes this
# script exit 1, but never stops the boot: $RUN/lima-boot-done gets this
# boot's instance id at the end unless a script asked for a reboot.
set -eu

INFO() { echo "LIMA $(date -Iseconds)| $*"; }
WARNING() { echo "LIMA $(date -Iseconds)| WARNING: $*"; }

RUN=/run
[ "$(uname -s)" = Linux ] || RUN=/var/run
mkdir -p "$RUN"
rm -f "$RUN/lima-boot-done"
LIMA_REBOOT_REQUIRED="$RUN/lima-reboot-required"
export LIMA_REBOOT_REQUIRED
rm -f "$LIMA_REBOOT_REQUIRED"
ERRORS="$RUN/lima-boot-errors"
LOGS=/var/log/lima-boot
mkdir -p -m 700 "$LOGS"

# lima.env and param.env: NAME=VALUE lines, exported exactly as written.
export_lines() {
	while IFS= read -r line || [ -n "$line" ]; do
		if [ -n "$line" ]; then export "$line"; fi
	done <"$1"
}
export_lines "${LIMA_CIDATA_MNT}/lima.env"
export_lines "${LIMA_CIDATA_MNT}/param.env"

# etc_environment, read as pam_env reads /etc/environment: blanks and "export "
# before the name are dropped, everything from the first "#" is a comment, and
# one pair of quotes around the value is removed.
while IFS= read -r line || [ -n "$line" ]; do
	line=${line%%#*}
	line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/^export[[:space:]][[:space:]]*//')
	case "$line" in *=*) ;; *) continue ;; esac
	name=${line%%=*}
	value=${line#*=}
	case "$value" in \"*) value=${value#\"} value=${value%\"} ;; \'*) value=${value#\'} value=${value%\'} ;; esac
	export "$name=$value"
done <"${LIMA_CIDATA_MNT}/etc_environment"

PATH="${LIMA_CIDATA_MNT}/util:${PATH}"
export PATH

CODE=0

# run_logged LOG CMD...: CMD's output to stdout (cloud-init-output.log) and to LOG; CMD's status.
run_logged() {
	log=$1
	shift
	status_file=$(mktemp)
	{
		if "$@"; then status=0; else status=$?; fi
		echo "$status" >"$status_file"
	} 2>&1 | tee "$log"
	status=$(cat "$status_file")
	rm -f "$status_file"
	return "$status"
}

# failed KIND NAME STATUS [LOG]: remember a failure for the host agent.
failed() {
	echo "$*" >>"$ERRORS"
	CODE=1
}

run_scripts() {
	dir=$1
	[ -d "$dir" ] || return 0
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		name=${f#"${LIMA_CIDATA_MNT}"/}
		INFO "Executing ${name}"
		log="$LOGS/$(echo "$name" | tr / _).log"
		if run_logged "$log" "$f"; then :; else
			status=$?
			WARNING "Failed to execute ${name} (exit status ${status})"
			failed boot "$name" "$status" "$log"
		fi
	done
}

run_scripts "${LIMA_CIDATA_MNT}/boot.essential.$(uname -s)"
if [ "${LIMA_CIDATA_PLAIN:-}" = 1 ]; then
	INFO "Plain mode: skipping boot.$(uname -s)/*"
else
	run_scripts "${LIMA_CIDATA_MNT}/boot.$(uname -s)"
fi

# data provisions: a file written as root, then given its owner and mode.
if [ -d "${LIMA_CIDATA_MNT}/provision.data" ]; then
	for f in "${LIMA_CIDATA_MNT}"/provision.data/*; do
		[ -f "$f" ] || continue
		n=${f##*/}
		eval "path=\${LIMA_CIDATA_DATAFILE_${n}_PATH} owner=\${LIMA_CIDATA_DATAFILE_${n}_OWNER}"
		eval "perms=\${LIMA_CIDATA_DATAFILE_${n}_PERMISSIONS} overwrite=\${LIMA_CIDATA_DATAFILE_${n}_OVERWRITE}"
		if [ -e "$path" ] && [ "$overwrite" = false ]; then
			INFO "Not overwriting $path"
			continue
		fi
		INFO "Copying $f to $path"
		user=${owner%%:*}
		dir=$(dirname "$path")
		sudo -iu "$user" mkdir -p "$dir" 2>/dev/null || mkdir -p "$dir" || true
		if ! { cp "$f" "$path" && chown "$owner" "$path" && chmod "$perms" "$path"; }; then
			WARNING "Failed to install data file $path"
			failed provision "data/$n" 1
		fi
	done
fi

if [ -d "${LIMA_CIDATA_MNT}/provision.system" ]; then
	for f in "${LIMA_CIDATA_MNT}"/provision.system/*; do
		[ -f "$f" ] || continue
		n=${f##*/}
		INFO "Executing $f"
		log="$LOGS/provision.system_$n.log"
		if run_logged "$log" "$f"; then :; else
			status=$?
			WARNING "Failed to execute $f (exit status $status)"
			failed provision "system/$n" "$status" "$log"
		fi
	done
fi

USER_SCRIPT="${LIMA_CIDATA_HOME}/.lima-user-script"
if [ -d "${LIMA_CIDATA_MNT}/provision.user" ]; then
	if [ "$(uname -s)" = Linux ] && [ -d /run/systemd/system ] && ! command -v openrc >/dev/null 2>&1; then
		# User scripts run in the user's systemd session (XDG_RUNTIME_DIR, user units), which
		# lingering starts; started again here if it failed.
		systemctl start "user@${LIMA_CIDATA_UID}.service" 2>/dev/null || true
		waited=0
		until [ -e "/run/user/${LIMA_CIDATA_UID}/systemd/private" ]; do
			if [ "$waited" -ge 120 ]; then
				WARNING "the systemd user session of ${LIMA_CIDATA_USER} did not start within 120 s"
				break
			fi
			sleep 3
			waited=$((waited + 3))
		done
	fi
	params=$(sed -n 's/^\(PARAM_[A-Za-z0-9_]*\)=.*/\1/p' "${LIMA_CIDATA_MNT}/param.env" | tr '\n' , | sed 's/,$//')
	for f in "${LIMA_CIDATA_MNT}"/provision.user/*; do
		[ -f "$f" ] || continue
		n=${f##*/}
		INFO "Executing $f (as user ${LIMA_CIDATA_USER})"
		cp "$f" "$USER_SCRIPT"
		chown "${LIMA_CIDATA_USER}" "$USER_SCRIPT"
		chmod 755 "$USER_SCRIPT"
		log="$LOGS/provision.user_$n.log"
		if command -v sudo >/dev/null 2>&1; then
			set -- sudo -iu "${LIMA_CIDATA_USER}" ${params:+"--preserve-env=$params"} \
				"XDG_RUNTIME_DIR=/run/user/${LIMA_CIDATA_UID}" "$USER_SCRIPT"
		else
			set -- su -s /bin/sh -c "$USER_SCRIPT" - "${LIMA_CIDATA_USER}"
		fi
		if run_logged "$log" "$@"; then :; else
			status=$?
			WARNING "Failed to execute $f as user ${LIMA_CIDATA_USER} (exit status $status)"
			failed provision "user/$n" "$status" "$log"
		fi
		rm -f "$USER_SCRIPT"
	done
fi

# Without passwordless sudo, the user gets a one-time password at the first boot.
if [ "$(uname -s)" != Darwin ] && [ "${LIMA_CIDATA_PASSWORDLESS_SUDO:-}" != 1 ] &&
	[ ! -e "${LIMA_CIDATA_HOME}/.lima-password-set" ]; then
	password=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	if echo "${LIMA_CIDATA_USER}:${password}" | chpasswd; then
		(umask 077 && echo "$password" >"${LIMA_CIDATA_HOME}/password")
		chown "${LIMA_CIDATA_USER}" "${LIMA_CIDATA_HOME}/password"
		touch "${LIMA_CIDATA_HOME}/.lima-password-set"
		INFO "The password of ${LIMA_CIDATA_USER} is in ${LIMA_CIDATA_HOME}/password"
	else
		WARNING "could not set a password for ${LIMA_CIDATA_USER}"
	fi
fi

if [ -e "$LIMA_REBOOT_REQUIRED" ]; then
	INFO "A reboot is required; not writing $RUN/lima-boot-done"
else
	INFO "Boot scripts done"
	echo "${LIMA_CIDATA_IID}" >"$RUN/lima-boot-done"
fi
exit "$CODE"
