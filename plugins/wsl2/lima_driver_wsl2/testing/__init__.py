"""Testing helpers for lima-driver-wsl2: :mod:`.fakewsl`, a fake ``wsl.exe``."""
