"""Single source of the version numbers."""

#: lima-core's own version (the distribution's version).
__version__ = "0.1.0"

#: The Lima release whose behaviour and on-disk layout lima-core follows. It is
#: what `lima-version` in an instance directory records, because Lima and its
#: drivers read that file to decide legacy behaviours (e.g. qemu picks
#: reverse-sshfs mounts for instances created before Lima 1.0).
LIMA_COMPAT_VERSION = "2.2.0"
