"""configure: the defaults vz fills into lima.yaml."""

from __future__ import annotations

import logging

import pytest
from lima_driver_vz import options
from lima_driver_vz.hostinfo import HostFacts

from lima_core.errors import ConfigError
from lima_core.limatype import LimaYAML

MAC15 = HostFacts("Darwin", (15, 0), "aarch64")
MAC26 = HostFacts("Darwin", (26, 1), "aarch64")


def fill(cfg: dict, facts: HostFacts = MAC15) -> tuple[LimaYAML, options.VZOptions]:
    y = LimaYAML.from_json(cfg)
    return y, options.fill_defaults(y, facts)


def test_defaults_for_an_empty_config() -> None:
    y, opts = fill({})
    assert y.vm_type == "vz" and y.mount_type == "virtiofs"
    assert y.ssh is not None and y.ssh.over_vsock is True
    assert y.vm_opts == {"vz": {"rosetta": {"enabled": False, "binfmt": False}, "diskImageFormat": "raw"}}
    assert opts == options.VZOptions()


def test_set_values_are_kept() -> None:
    y, opts = fill({"vmType": "vz", "mountType": "reverse-sshfs", "ssh": {"overVsock": False},
                    "vmOpts": {"vz": {"rosetta": {"enabled": True, "binfmt": True}, "future": 1}}})
    assert y.mount_type == "reverse-sshfs" and y.ssh.over_vsock is False
    assert opts.rosetta_enabled and opts.rosetta_binfmt
    assert y.vm_opts["vz"]["future"] == 1


def test_over_vsock_defaults_off_for_non_linux_guests() -> None:
    y, _ = fill({"os": "FreeBSD"})
    assert y.ssh.over_vsock is False


def test_top_level_rosetta_is_migrated() -> None:
    y, opts = fill({"rosetta": {"enabled": True, "binfmt": True}})
    assert opts.rosetta_enabled and opts.rosetta_binfmt
    assert y.vm_opts["vz"]["rosetta"] == {"enabled": True, "binfmt": True}


def test_both_rosettas_warn_and_vmopts_wins(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "lima_driver_vz"):
        _, opts = fill({"rosetta": {"enabled": True, "binfmt": True},
                        "vmOpts": {"vz": {"rosetta": {"enabled": False, "binfmt": False}}}})
    assert not opts.rosetta_enabled
    assert "top-level `rosetta` is deprecated" in caplog.text


def test_disk_format_default_asif_only_for_macos_guests_on_macos_26() -> None:
    assert fill({"os": "Darwin"}, MAC26)[1].disk_image_format == "asif"
    assert fill({"os": "Darwin"}, MAC15)[1].disk_image_format == "raw"
    assert fill({}, MAC26)[1].disk_image_format == "raw"


@pytest.mark.parametrize("cfg", [
    {"vmOpts": {"vz": {"rosetta": "yes"}}},
    {"vmOpts": {"vz": {"rosetta": {"enabled": "yes"}}}},
    {"vmOpts": {"vz": {"diskImageFormat": 3}}},
])
def test_malformed_vmopts_are_config_errors(cfg: dict) -> None:
    with pytest.raises(ConfigError, match="vmOpts.vz"):
        fill(cfg)
