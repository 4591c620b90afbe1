"""containerd: the archive is fetched at `lima start` and put in cidata, or `lima start` says in one line why
not (never a silent skip). Fake driver; the guest side is tested on the cloud-init guest (tests/e2e)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pycdlib


def _archive(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"#!/bin/sh\necho nerdctl version 9.9.9\n"
        info = tarfile.TarInfo("bin/nerdctl")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return path


def _iso_file(iso_path: Path, name: str) -> bytes | None:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
        return buf.getvalue()
    except pycdlib.pycdlibexception.PyCdlibInvalidInput:
        return None
    finally:
        iso.close()


def _template(fake_template: Path, containerd: str) -> Path:
    path = fake_template.with_name("ctd.yaml")
    path.write_text(fake_template.read_text() + containerd)
    return path


def test_a_local_archive_goes_into_cidata(lima, driver_mode: str, fake_ssh: Path, fake_template: Path,
                                          lima_home: Path, tmp_path: Path, instances: list[str],
                                          monkeypatch) -> None:
    # The fake guest runs the host agent's checks on this host: give it what the guest would have.
    guest_bin = tmp_path / "guest-bin"
    guest_bin.mkdir()
    for tool in ("nerdctl", "systemctl"):
        (guest_bin / tool).write_text("#!/bin/sh\ntrue\n")
        (guest_bin / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{guest_bin}:{os.environ['PATH']}")
    archive = _archive(tmp_path / "nerdctl-full.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    tmpl = _template(fake_template, f"containerd:\n  user: true\n  archives:\n  - location: {archive}\n"
                                    f"    digest: sha256:{digest}\n")
    instances.append("c1")
    r = lima("start", "--name", "c1", str(tmpl), ok=True)
    assert "cannot be had" not in r.stderr  # nothing to say: it is installed
    iso = lima_home / "c1" / "cidata.iso"
    assert _iso_file(iso, "nerdctl-full.tgz") == archive.read_bytes()
    env = _iso_file(iso, "lima.env").decode()
    assert "LIMA_CIDATA_CONTAINERD_USER=1\n" in env and "LIMA_CIDATA_CONTAINERD_SYSTEM=\n" in env
    assert "LIMA_CIDATA_CONTAINERD_ARCHIVE=nerdctl-full.tgz\n" in env
    assert "Waiting for the optional requirement 2 of 2: 'containerd binaries to be installed'" in r.stderr
    lima("stop", "c1", ok=True)


def test_an_archive_that_cannot_be_had_is_said_in_one_line(lima, driver_mode: str, fake_ssh: Path,
                                                           fake_template: Path, lima_home: Path, tmp_path: Path,
                                                           instances: list[str]) -> None:
    tmpl = _template(fake_template, f"containerd:\n  user: true\n  archives:\n  - location: {tmp_path}/missing.tgz\n")
    instances.append("c2")
    r = lima("start", "--name", "c2", str(tmpl), ok=True)
    said = [line for line in r.stderr.splitlines() if "nerdctl-full cannot be had" in line]
    assert len(said) == 1, r.stderr
    assert "containerd.user: false" in said[0] and "missing.tgz does not exist" in said[0]
    iso = lima_home / "c2" / "cidata.iso"
    assert _iso_file(iso, "nerdctl-full.tgz") is None
    env = _iso_file(iso, "lima.env").decode()
    assert "LIMA_CIDATA_CONTAINERD_USER=\n" in env and "LIMA_CIDATA_CONTAINERD_ARCHIVE" not in env
    lima("stop", "c2", ok=True)
