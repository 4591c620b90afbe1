"""``containerd``: nerdctl-full installed in the guest, as Lima installs it.

``lima start`` gets the archive for the guest's arch (``containerd.archives``,
Lima's pinned nerdctl-full release by default) into the download cache, with
its digest checked; the host agent puts it in cidata as ``nerdctl-full.tgz``
and tells the guest (``LIMA_CIDATA_CONTAINERD_*``), whose boot script
``40-install-containerd.sh`` installs it. When the archive cannot be had (no
network, a wrong digest), ``lima start`` says so in one line and the guest is
not told to expect containerd: set ``containerd.system`` and
``containerd.user`` to false to silence it.
"""

from __future__ import annotations

from pathlib import Path

from . import download
from .limatype import File, LimaYAML

#: Lima's default archives (pkg/limayaml/containerd.yaml): nerdctl-full for the arches it ships.
DEFAULT_ARCHIVES = (
    File(location="https://github.com/containerd/nerdctl/releases/download/v2.1.4/nerdctl-full-2.1.4-linux-amd64.tar.gz",
         arch="x86_64", digest="sha256:03c1a3194b6e5fec02d866a35d0029c694b4cedb865b28f931187aa0c85dd125"),
    File(location="https://github.com/containerd/nerdctl/releases/download/v2.1.4/nerdctl-full-2.1.4-linux-arm64.tar.gz",
         arch="aarch64", digest="sha256:124b171778f8cc9bb317e094e5a92de5faf6d1bb5f5c9ded4b82a55df2c3c295"),
)
ARCHIVE_NAME = "nerdctl-full.tgz"


def wanted(cfg: LimaYAML) -> bool:
    return bool(cfg.containerd and (cfg.containerd.system or cfg.containerd.user))


def archives(cfg: LimaYAML) -> list[File]:
    """The candidate archives for the config's arch, in order."""
    listed = (cfg.containerd.archives if cfg.containerd else None) or list(DEFAULT_ARCHIVES)
    arch = cfg.arch
    return [a for a in listed if (a.arch or arch) == arch]


def archive(cfg: LimaYAML, *, progress: download.Progress | None = None, offline: bool = False) -> Path:
    """The nerdctl-full archive on this host (fetched into the download cache unless *offline*).

    :raises download.DownloadError: no archive for the arch, or none could be had (the last reason).
    """
    candidates = archives(cfg)
    if not candidates:
        raise download.DownloadError(f"containerd.archives has no archive for arch {cfg.arch}")
    error: download.DownloadError | None = None
    for candidate in candidates:
        try:
            return download.locate(candidate.location, digest=candidate.digest, progress=progress,
                                   offline=offline)
        except download.DownloadError as exc:
            error = exc
    assert error is not None
    raise error


def unavailable_message(cfg: LimaYAML, reason: str) -> str:
    on = [k for k in ("system", "user") if cfg.containerd and getattr(cfg.containerd, k)]
    return (f"containerd.{' and containerd.'.join(on)} is set but nerdctl-full cannot be had ({reason}); containerd "
            f"is not installed in the guest (set {' and '.join(f'containerd.{k}: false' for k in on)} to silence "
            "this, or give a local archive in containerd.archives)")
