"""File names inside an instance directory and under LIMA_HOME, and of driver executables, as Lima names them.

The one place these names are written; code never spells them inline.
"""

from __future__ import annotations

import os

# metadata
LIMA_YAML = "lima.yaml"
LIMA_VERSION = "lima-version"
PROTECTED = "protected"

# cloud-init
CLOUD_CONFIG = "cloud-config.yaml"
CIDATA_ISO = "cidata.iso"
CIDATA_DIR = "cidata"

# disks and kernel
IMAGE = "image"
DISK = "disk"
ISO = "iso"
BASE_DISK = "basedisk"
DIFF_DISK = "diffdisk"
KERNEL = "kernel"
KERNEL_CMDLINE = "kernel.cmdline"
INITRD = "initrd"

# qemu
QMP_SOCK = "qmp.sock"
QEMU_EFI_CODE = "qemu-efi-code.fd"

# vz
VZ_IDENTIFIER = "vz-identifier"
VZ_EFI = "vz-efi"
VZ_HWMODEL = "vz-hwmodel"
VZ_AUX = "vz-aux"

# serial consoles
SERIAL_LOG = "serial.log"
SERIAL_SOCK = "serial.sock"
SERIALP_LOG = "serialp.log"
SERIALP_SOCK = "serialp.sock"
SERIALV_LOG = "serialv.log"
SERIALV_SOCK = "serialv.sock"

# ssh
SSH_SOCK = "ssh.sock"
SSH_CONFIG = "ssh.config"

# vnc
VNC_DISPLAY = "vncdisplay"
VNC_PASSWORD = "vncpassword"

# guest agent
GUEST_AGENT_SOCK = "ga.sock"

# portForwards: where a relative hostSocket goes
SOCKET_DIR = "sock"

# host agent
HOST_AGENT_PID = "ha.pid"
HOST_AGENT_SOCK = "ha.sock"
HOST_AGENT_STDOUT_LOG = "ha.stdout.log"
HOST_AGENT_STDERR_LOG = "ha.stderr.log"

# external driver
EXTERNAL_DRIVER_STDERR_LOG = "driver.stderr.log"

# files `lima stop -f` removes from an instance directory
TMP_FILE_SUFFIXES = (".pid", ".sock", ".tmp")

# any of these makes a directory an instance directory
INSTANCE_MARKERS = (HOST_AGENT_STDOUT_LOG, HOST_AGENT_STDERR_LOG, VZ_IDENTIFIER, IMAGE, DISK, BASE_DISK,
                    DIFF_DISK, CIDATA_ISO)

# lima-core additions (not in Lima): the identity recorded beside a pid file
PID_IDENTITY_SUFFIX = ".identity"
# the record of a suspended instance (lima suspend), which makes its status Suspended
SUSPENDED = "suspended.json"
# the state a driver saved on suspend: qemu's migration stream and what resuming it needs; vz's save file
QEMU_SAVED_STATE = "qemu.savedstate"
QEMU_SAVED_STATE_INFO = "qemu.savedstate.json"
VZ_SAVED_STATE = "vz.savedstate"
VZ_SAVED_STATE_INFO = "vz.savedstate.json"
# held while a process of the instance is spawned and recorded, and while `lima stop -f` kills them
SPAWN_LOCK = "spawn.lock"
# held by the host agent for its whole life
HOST_AGENT_LOCK = "ha.lock"


def pid_file(vm_type: str) -> str:
    """The VM process's pid file: qemu.pid, vz.pid, krunkit.pid."""
    return f"{vm_type}.pid"


def driver_socket(driver: str) -> str:
    """The external driver's gRPC socket: <name>.drv.sock."""
    return f"{driver}.drv.sock"


def driver_pid_file(driver: str) -> str:
    """The external driver process's pid file, written by the host: <name>.drv.pid."""
    return f"{driver}.drv.pid"


def sshfs_pid_file(index: int) -> str:
    """reverse-sshfs mount *index*: the ssh running sshfs in the guest (a lima-core addition, for stop -f)."""
    return f"sshfs-{index}.pid"


def sftp_server_pid_file(index: int) -> str:
    """reverse-sshfs mount *index*: the host's sftp-server serving it (a lima-core addition, for stop -f)."""
    return f"sftp-server-{index}.pid"


DRIVER_SOCKET_SUFFIX = ".drv.sock"
DRIVER_PID_SUFFIX = ".drv.pid"

# external driver executables (on LIMA_DRIVERS_PATH, in <prefix>/libexec/lima)
DRIVER_EXECUTABLE_PREFIX = "lima-driver-"


def driver_executable(driver: str, windows: bool = os.name == "nt") -> str:
    """The executable serving *driver*: lima-driver-<name>, with ``.exe`` on Windows."""
    return DRIVER_EXECUTABLE_PREFIX + driver + (".exe" if windows else "")


def driver_name(path: str, windows: bool = os.name == "nt") -> str | None:
    """The driver an executable serves, by its file name, or None if the name is not a driver's.

    Lima's rule: ``lima-driver-<name>``; on Windows the file name must end in
    ``.exe`` (any case), which is not part of the name; elsewhere a name
    ending in ``.exe`` is not a driver. *path* may be a whole path (``argv[0]``).
    """
    base = os.path.basename(path)
    if not base.startswith(DRIVER_EXECUTABLE_PREFIX):
        return None
    name = base[len(DRIVER_EXECUTABLE_PREFIX):]
    if windows:
        if not name.lower().endswith(".exe"):
            return None
        name = name[:-4]
    elif name.endswith(".exe"):
        return None
    return name or None

# under LIMA_HOME
CONFIG_DIR = "_config"
USER_KEY = "user"
USER_PUBKEY = "user.pub"
DEFAULT_YAML = "default.yaml"
OVERRIDE_YAML = "override.yaml"
DRIVERS_YAML = "drivers.yaml"  # lima-core: {external: [names]}, the build-tag analog
TEMPLATES_DIR = "_templates"
DISKS_DIR = "_disks"
# in _disks/<name>/: the disk, and the symlink to the instance directory that uses it
DATADISK = "datadisk"
DISK_IN_USE_BY = "in_use_by"
