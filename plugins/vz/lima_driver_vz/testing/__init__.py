"""Testing helpers for lima-driver-vz: :mod:`.fakevz`, a fake Virtualization.framework."""
