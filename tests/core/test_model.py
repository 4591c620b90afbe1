"""Lima's JSON keys, type errors with paths, and unknown keys surviving a round trip."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lima_core import _jsonmodel
from lima_core.errors import ConfigError
from lima_core.limatype import SSH, DriverFeatures, File, Info, Instance, Kernel, LimaYAML
from lima_core.units import format_size, human_size, parse_size


def test_info_uses_limas_keys() -> None:
    info = Info(name="qemu", vsock_port=2222, virtio_port="io.lima-vm.guest_agent.0",
                features=DriverFeatures(can_run_gui=True, dynamic_ssh_address=True, static_ssh_port=True,
                                        skip_socket_forwarding=True, no_cloud_init=True, rosetta_enabled=True,
                                        rosetta_bin_fmt=True, supported_image_formats=["raw"]))
    assert info.to_json() == {
        "name": "qemu", "vsockPort": 2222, "virtioPort": "io.lima-vm.guest_agent.0",
        "features": {"canRunGui": True, "dynamicSSHAddress": True, "staticSSHPort": True,
                     "skipSocketForwarding": True, "noCloudInit": True, "rosettaEnabled": True,
                     "rosettaBinFmt": True, "supportedImageFormats": ["raw"]},
    }


def test_info_omitempty_matches_go() -> None:
    # canRunGui, instanceDir and supportedImageFormats are omitempty in Lima; the rest are not.
    assert Info(name="x").to_json() == {
        "name": "x", "vsockPort": 0, "virtioPort": "",
        "features": {"dynamicSSHAddress": False, "staticSSHPort": False, "skipSocketForwarding": False,
                     "noCloudInit": False, "rosettaEnabled": False, "rosettaBinFmt": False},
    }


def test_instance_round_trip_keeps_unknown_keys() -> None:
    doc = {
        "name": "default", "hostname": "lima-default", "status": "Running", "dir": "/h/.lima/default",
        "vmType": "qemu", "arch": "x86_64", "cpus": 4, "memory": 4294967296, "disk": 107374182400,
        "sshLocalPort": 60022, "sshAddress": "127.0.0.1", "hostAgentPID": 10, "driverPID": 11,
        "errors": ["boom"], "protected": False, "limaVersion": "2.0.0", "param": {"A": "b"},
        "config": {"vmType": "qemu", "cpus": 4, "images": [{"location": "x", "arch": "x86_64",
                                                             "kernel": {"location": "k", "cmdline": "c"}}],
                   "mounts": [{"location": "~", "9p": {"cache": "mmap"}, "futureMountKey": 1}],
                   "someFutureField": {"a": [1, 2]}},
        "aFutureInstanceKey": True,
    }
    inst = Instance.from_json(doc)
    assert inst.config is not None and inst.config.images is not None
    assert inst.config.images[0].kernel is not None and inst.config.images[0].kernel.cmdline == "c"
    assert inst.config.mounts is not None and inst.config.mounts[0].ninep is not None
    assert json.loads(json.dumps(inst.to_json())) == doc


def test_type_errors_name_the_path() -> None:
    with pytest.raises(ConfigError, match=r"^cpus: expected an integer, got the string 'four'$"):
        LimaYAML.from_json({"cpus": "four"})
    with pytest.raises(ConfigError, match=r"^images\[1\]\.location: expected a string, got a list$"):
        LimaYAML.from_json({"images": [{"location": "a"}, {"location": [1]}]})
    with pytest.raises(ConfigError, match=r"^mounts\[0\]\.writable: expected true or false"):
        LimaYAML.from_json({"mounts": [{"location": "/", "writable": "yes"}]})
    with pytest.raises(ConfigError, match=r"^ssh: expected a mapping"):
        LimaYAML.from_json({"ssh": 22})


def test_none_is_not_written_but_false_is() -> None:
    cfg = LimaYAML.from_json({"plain": False})
    assert cfg.to_json() == {"plain": False}


def test_models_behave_as_keyword_only_dataclasses() -> None:
    # __repr__ and __eq__ are JSONModel's and __init__ is compiled at first use: they must act as dataclasses' do.
    assert dataclasses.is_dataclass(Info)
    assert Kernel(location="k", cmdline="c").cmdline == "c" and File(location="f").location == "f"  # each class its own
    with pytest.raises(TypeError):
        File(cmdline="c")  # a subclass's field, even once Kernel's __init__ is compiled
    info = Info(name="qemu", vsock_port=2222)
    assert (info.name, info.vsock_port, info.virtio_port) == ("qemu", 2222, "")
    assert info.features == DriverFeatures() and info.features is not Info().features  # a fresh default each time
    assert Instance().errors is not Instance().errors
    assert info == Info(name="qemu", vsock_port=2222) and info != Info(name="qemu")
    assert Info() != DriverFeatures() and Info(extra={"a": 1}) != Info()
    assert repr(SSH(local_port=22)) == ("SSH(address=None, local_port=22, load_dot_ssh_pub_keys=None, forward_agent=None, "
                                        "forward_x11=None, forward_x11_trusted=None, over_vsock=None)")
    assert dataclasses.replace(info, name="vz") == Info(name="vz", vsock_port=2222)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nmae'"):
        Info(nmae="qemu")
    with pytest.raises(TypeError):
        Info("qemu")  # type: ignore[misc]
    with pytest.raises(TypeError, match="unhashable"):
        hash(info)


# -- decoding and encoding fuzzed documents ------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
#: Values of a wrong or convertible type.
odd = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.text(max_size=3),
                st.lists(st.integers(0, 2), max_size=2), st.dictionaries(st.integers(0, 2), st.none(), max_size=2))


def documents(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON-ish values for *hint*: mostly the declared shape (to go deep), sometimes an odd value."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, _jsonmodel.JSONModel):
        if depth > 3:
            return st.just({})
        hints = typing.get_type_hints(hint)
        fields = {f.metadata["key"]: documents(hints[f.name], depth + 1)
                  for f in dataclasses.fields(hint) if "key" in f.metadata}
        shaped = st.fixed_dictionaries({}, optional=fields).flatmap(
            lambda d: st.dictionaries(st.text(max_size=4), odd, max_size=2).map(lambda extra: {**extra, **d}))
        return st.one_of(shaped, shaped, shaped, odd)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return st.one_of(st.lists(documents(item, depth + 1) | st.none(), max_size=3), odd)
    if origin is dict:
        _key, item = typing.get_args(hint)
        return st.one_of(st.dictionaries(st.text(max_size=4) | st.integers(0, 3), documents(item, depth + 1),
                                         max_size=3), odd)
    plain = {str: st.text(max_size=5), int: st.integers(-2**40, 2**40), bool: st.booleans()}.get(hint)
    return st.one_of(plain, plain, odd) if plain is not None else odd


@pytest.mark.parametrize("cls", [Info, Instance, LimaYAML, Kernel])
@FUZZ
@given(data=st.data())
def test_decoded_documents_encode_by_the_rules(cls: type, data: st.DataObject) -> None:
    """Any document decodes or raises one ConfigError naming a path; the model encodes by the rules, and its
    wire form (to_json_bytes, from_json_bytes) round-trips."""
    doc = data.draw(documents(cls))
    try:
        model = cls.from_json(doc, "top")
    except ConfigError as exc:
        assert str(exc).startswith("top") and "\n" not in str(exc)
        return
    assert model.to_json() == reference_to_json(model)
    wire = model.to_json_bytes()
    assert wire == json.dumps(model.to_json(), separators=(",", ":")).encode()
    again = cls.from_json_bytes(wire).to_json_bytes()  # a None field comes back as its default, once
    assert cls.from_json_bytes(again).to_json_bytes() == again


def reference_to_json(model: Any) -> Any:
    """The encoding rules spelled out: keyed fields in order, None never written, omitempty drops empty
    values, unknown keys after them without overriding a known one."""
    if isinstance(model, list):
        return [reference_to_json(v) for v in model]
    if isinstance(model, dict):
        return {k: reference_to_json(v) for k, v in model.items()}
    if not isinstance(model, _jsonmodel.JSONModel):
        return model
    out: dict[str, Any] = {}
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        if "key" not in f.metadata or value is None or (f.metadata["omitempty"] and value in ("", 0, False, [], {})):
            continue
        out[f.metadata["key"]] = reference_to_json(value)
    for k, v in model.extra.items():
        out.setdefault(k, v)
    return out


def test_decoding_copies_containers() -> None:
    doc = {"images": [{"location": "a"}], "env": {"A": "b"}, "additionalDisks": ["d"]}
    cfg = LimaYAML.from_json(doc)
    assert cfg.images is not None and cfg.env is not None and cfg.additional_disks is not None
    assert cfg.env is not doc["env"] and cfg.additional_disks is not doc["additionalDisks"]
    assert type(cfg.images[0]).__name__ == "Image" and cfg.images[0].location == "a"


def test_wire_form_parses_as_json_does() -> None:
    for text in (b'{"name":"x"}', b' {"name":"x"} ', b'\xef\xbb\xbf{"name":"x"}', '{"name":"é"}'.encode("utf-16"),
                 b'{"name":"x"} {', b"[1]", b"", b'{"name":"\xff"}'):
        try:
            expected: Any = Info.from_json(json.loads(text)) if text else Info()
        except (ValueError, ConfigError) as exc:
            expected = type(exc)
        try:
            got: Any = Info.from_json_bytes(text)
        except (ValueError, ConfigError) as exc:
            got = type(exc)
        assert got == expected, text


@pytest.mark.parametrize(("text", "expected"), [
    ("4GiB", 4 << 30), ("4G", 4 << 30), ("4GB", 4 << 30), ("512MiB", 512 << 20), ("100GiB", 100 << 30),
    ("1.5GiB", 3 << 29), ("123", 123), (" 2 TiB ", 2 << 40),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="memory: 'lots' is not a size"):
        parse_size("lots", "memory")


def test_format_sizes() -> None:
    assert format_size(4 << 30) == "4GiB"
    assert format_size(1536 << 20) == "1536MiB"
    assert human_size(1536 << 20) == "1.5GiB"
