"""validate: the host first, then every configuration Lima's vz driver refuses or warns about."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from lima_driver_vz import hostinfo
from lima_driver_vz.hostinfo import HostFacts

from lima_core.errors import HostUnsupported, ValidationError

LINUX = HostFacts("Linux", (), "x86_64")


@pytest.mark.parametrize("facts, os_named", [
    (HostFacts("Linux", (), "x86_64"), "Linux"),
    (HostFacts("Windows", (), "x86_64"), "Windows"),
    (HostFacts("Darwin", (12, 6), "aarch64"), "macOS 12.6"),
])
def test_wrong_host_is_refused_in_one_sentence(make: Callable, facts: HostFacts, os_named: str) -> None:
    host, _ = make(facts=facts)
    expected = f"vz needs macOS 13 or later; this host runs {os_named}"
    with pytest.raises(HostUnsupported) as err:
        host.validate()
    assert err.value.message == expected
    with pytest.raises(HostUnsupported, match=expected):
        host.check_host()


def test_check_host_on_a_mac_loads_the_framework(make: Callable) -> None:
    host, _ = make()
    host.check_host()


def test_this_linux_host_is_refused() -> None:
    if hostinfo.HostFacts.current().is_macos:
        pytest.skip("runs on a Mac")
    with pytest.raises(HostUnsupported, match="vz needs macOS 13 or later; this host runs Linux"):
        hostinfo.check(hostinfo.HostFacts.current())


def test_a_plain_linux_guest_is_accepted(make: Callable) -> None:
    host, _ = make({"mounts": [{"location": "~"}], "networks": [{"vzNAT": True}], "video": {"display": "vz"}})
    host.validate()


@pytest.mark.parametrize("cfg, message", [
    ({"mountType": "9p"}, 'field `mountType` must be "reverse-sshfs" or "virtiofs" for the VZ driver, got "9p"'),
    ({"mountType": "virtiofs", "mountTypesUnsupported": ["virtiofs"]}, "listed in `mountTypesUnsupported`"),
    ({"tpm": True}, "field `tpm` is not supported by the VZ driver"),
    ({"os": "Windows"}, "cannot run Windows guests"),
    ({"os": "Darwin"}, "does not install or run macOS guests"),
    ({"firmware": {"images": [{"location": "/fw", "arch": "aarch64"}]}}, "`firmware.images` configuration is not"),
    ({"firmware": {"images": [{"location": "/fw", "arch": "aarch64", "vmType": "vz"}]}}, "`firmware.images`"),
    ({"arch": "x86_64"}, 'unsupported arch: "x86_64"'),
    ({"networks": [{"lima": "shared"}]}, "networks[0]: `lima:` networks are not supported"),
    ({"networks": [{"vzNAT": True}, {"socket": "/tmp/s"}]}, "networks[1]: `socket:` networks"),
    ({"vmOpts": {"vz": {"diskImageFormat": "qcow2"}}}, 'diskImageFormat must be "raw" or "asif", got "qcow2"'),
    ({"vmOpts": {"vz": {"diskImageFormat": "asif"}}}, '"asif" needs macOS 26 or later; this host runs macOS 15.5'),
])
def test_refused_configurations(make: Callable, cfg: dict, message: str) -> None:
    host, _ = make(cfg)
    with pytest.raises(ValidationError) as err:
        host.validate()
    assert message in err.value.message


def test_firmware_for_another_driver_or_arch_is_fine(make: Callable) -> None:
    host, _ = make({"firmware": {"images": [{"location": "/fw", "arch": "aarch64", "vmType": "qemu"},
                                            {"location": "/fw", "arch": "x86_64"}]}})
    host.validate()


def test_asif_on_macos_26(make: Callable) -> None:
    host, _ = make({"vmOpts": {"vz": {"diskImageFormat": "asif"}}}, facts=HostFacts("Darwin", (26, 0), "aarch64"))
    host.validate()


def test_warnings(make: Callable, caplog: pytest.LogCaptureFixture) -> None:
    host, _ = make({"firmware": {"legacyBIOS": True}, "audio": {"device": "coreaudio"},
                    "video": {"display": "vnc"}, "someFutureKey": {"a": 1},
                    "mounts": [{"location": "~", "virtiofs": {"queueSize": 1024}}]},
                   facts=HostFacts("Darwin", (14, 0), "x86_64"))
    with caplog.at_level(logging.WARNING, "lima_driver_vz"):
        host.validate()
    text = caplog.text
    assert "ignoring `firmware.legacyBIOS`" in text
    assert "`audio.device` must be" in text and "`video.display` must be" in text
    assert "someFutureKey" in text and "queueSize" in text
    assert "macOS 15.5 or later is needed to boot Linux 6.12" in text
