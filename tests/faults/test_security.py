"""Security: socket and directory modes; names and paths with spaces, quotes and ``$(...)`` work and
inject nothing; no shell command line is built from user input; unsafe driver executables are refused.
(The same through real QEMU and ssh: test_qemu_faults.py.)"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pycdlib
import pytest
from faultkit import one_error_line, quick_status

pytestmark = pytest.mark.usefixtures("fake_ssh")
REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_socket_and_directory_modes(lima, external: Path, fake_template: Path, lima_home: Path,
                                    instances: list[str]) -> None:
    instances.append("m")
    lima("start", "--name", "m", str(fake_template), ok=True)
    d = lima_home / "m"
    assert mode(d) == 0o700
    assert mode(d / "fake.drv.sock") == 0o600 and stat.S_ISSOCK((d / "fake.drv.sock").lstat().st_mode)
    assert mode(d / "ha.sock") == 0o600
    assert mode(lima_home / "_config" / "user") == 0o600  # the ssh private key
    lima("stop", "m", ok=True)


def _evil(tag: str) -> str:
    """Spaces, both quotes, a command substitution and a comma: each would break a string-built command.
    As a path it is nested: .../a b'c"$(touch /tmp/ + pwned-TAG),x."""
    return f"a b'c\"$(touch /tmp/pwned-{tag}),x"


def test_hostile_paths_and_names_inject_nothing(lima, external: Path, short_tmp: Path, lima_home: Path,
                                                monkeypatch: pytest.MonkeyPatch, fake_ssh: Path) -> None:
    tag = secrets.token_hex(6)
    pwned = Path(f"/tmp/pwned-{tag}")
    evil = _evil(tag)
    home = short_tmp / evil
    monkeypatch.setenv("LIMA_HOME", str(home))
    shared = short_tmp / f"share {evil}"
    shared.mkdir(parents=True)
    tdir = short_tmp / f"tmpl {evil}"
    tdir.mkdir(parents=True)
    (tdir / "i.raw").write_bytes(b"\0" * 4096)
    template = tdir / "t.yaml"
    template.write_text(f"vmType: fake\nimages:\n- location: i.raw\nmountType: 9p\n"
                        f"mounts:\n- location: {_yaml(str(shared))}\n  mountPoint: {_yaml('/mnt/' + evil)}\n"
                        f"  writable: true\nparam:\n  EVIL: {_yaml(evil)}\n"
                        # Lima refuses a param nothing uses; a system provision uses it (the fake VM runs none)
                        "provision:\n- script: |\n    #!/bin/sh\n    printf '%s' \"$PARAM_EVIL\" >/dev/null\n")
    cwd = short_tmp / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a relative `touch pwned` would land here

    lima("create", "--name", "evil", str(template), ok=True)
    try:
        _use_everything(lima, home, shared, cwd, evil, tag, fake_ssh)
    finally:
        if (home / "evil").exists():
            lima("delete", "-f", "evil")
    assert not pwned.exists() and list(cwd.iterdir()) == []


def _use_everything(lima, home: Path, shared: Path, cwd: Path, evil: str, tag: str, fake_ssh: Path) -> None:
    lima("start", "evil", ok=True)
    assert quick_status("evil")["status"] == "Running"
    d = home / "evil"

    # lima shell: --workdir and arguments reach the guest's shell quoted (fake ssh runs them with sh -c)
    r = lima("shell", "evil", "echo", evil, ok=True)
    assert r.stdout.strip() == evil
    r = lima("shell", "--workdir", str(shared), "evil", "pwd", ok=True)
    assert r.stdout.strip() == str(shared)
    r = lima("shell", "--workdir", f"/nonexistent/$(touch /tmp/pwned-{tag})", "evil", "true")
    assert r.exit_code != 0

    # snapshot tags are arguments, never command lines
    # (no whitespace: the listing is qemu-img's table, split on blanks, as Lima reads it)
    for snap in (f"$(touch${{IFS}}pwned-{tag})", f"`touch${{IFS}}pwned-{tag}`", "x'y\"z;touch${IFS}pwned"):
        lima("snapshot", "create", "evil", "--tag", snap, ok=True)
        assert snap in lima("snapshot", "list", "-q", "evil", ok=True).stdout.splitlines()
        lima("snapshot", "delete", "evil", "--tag", snap, ok=True)

    # what the guest sources at boot (lima.env, param.env) gives back the exact strings
    env = _source_cidata(d / "cidata.iso", "LIMA_CIDATA_MOUNTS_0_MOUNTPOINT", "PARAM_EVIL")
    assert env == ["/mnt/" + evil, evil]

    # ssh reads ssh.config as lima meant it: the key path with its quotes and spaces
    key = home / "_config" / "user"
    real_ssh = shutil.which("ssh", path=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                        if p != str(fake_ssh)))
    if real_ssh is None:
        pytest.skip("the OpenSSH client is not installed")
    resolved = subprocess.run([real_ssh, "-G", "-F", str(d / "ssh.config"), "lima-evil"], capture_output=True,
                              text=True, check=True).stdout
    assert f"identityfile {key}" in resolved.splitlines()
    assert "proxycommand" not in resolved.lower().replace("proxycommand none", "")

    lima("stop", "evil", ok=True)
    lima("delete", "evil", ok=True)


def _yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _source_cidata(iso_path: Path, *names: str) -> list[str]:
    """Read lima.env and param.env from the cidata volume with sh, as the guest's boot.sh does (each line
    exported as written)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        files = {}
        for name in ("lima.env", "param.env"):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            files[name] = buf.getvalue()
    finally:
        iso.close()
    tmp = iso_path.parent / "sourced"
    tmp.mkdir()
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    read = 'while IFS= read -r line || [ -n "$line" ]; do if [ -n "$line" ]; then export "$line"; fi; done'
    script = f"{read} <lima.env && {read} <param.env && " + " && ".join(f'printf "%s\\n" "${n}"' for n in names)
    out = subprocess.run(["sh", "-c", script], cwd=tmp, capture_output=True, text=True, check=True).stdout
    shutil.rmtree(tmp)
    return out.splitlines()


def test_config_that_would_inject_is_refused(lima, internal: Path, tmp_path: Path, fake_template: Path,
                                             lima_home: Path) -> None:
    """user: and param: end up in ssh.config and in shell files the guest sources as root."""
    base = fake_template.read_text()
    for extra, fragment in (('user:\n  name: "me\\nProxyCommand touch /tmp/pwned"\n', "user.name"),
                            ("user:\n  name: Me\n", "user.name"),
                            ('user:\n  shell: "/bin/sh\\nx"\n', "user.shell"),
                            ("param:\n  'x; touch /tmp/pwned': 1\n", "param"),
                            ("param:\n  'X\\n': 1\n", "param")):
        t = tmp_path / "t.yaml"
        t.write_text(base + extra)
        one_error_line(lima("create", "--name", "inj", str(t)), fragment)
        assert not (lima_home / "inj").exists()


def test_world_writable_driver_is_refused_with_the_reason(lima, tmp_path: Path, driver_bin: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ww_file = tmp_path / "file"
    ww_file.mkdir()
    shutil.copy(driver_bin / "lima-driver-fake", ww_file / "lima-driver-fake")
    (ww_file / "lima-driver-fake").chmod(0o777)
    ww_dir = tmp_path / "dir"
    ww_dir.mkdir()
    shutil.copy(driver_bin / "lima-driver-fake", ww_dir / "lima-driver-fake")
    ww_dir.chmod(0o777)
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    for directory, why in ((ww_file, "it is world-writable, so any user could replace it; run `chmod o-w"),
                           (ww_dir, "its directory is world-writable (without the sticky bit)")):
        monkeypatch.setenv("LIMA_DRIVERS_PATH", str(directory))
        r = lima("drivers", "list", ok=True)
        assert f"WARNING: refusing driver {directory / 'lima-driver-fake'}: {why}" in r.stderr
        assert "fake" not in r.stdout
    (ww_dir).chmod(0o1777)  # sticky, like /tmp: others cannot replace the file
    r = lima("drivers", "list", ok=True)
    assert "refusing" not in r.stderr and "fake" in r.stdout


#: Ways to hand a command line to a shell, or to build one as a string.
SHELL_USES = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput\(|"
                        r"subprocess\.getstatusoutput\(|\bcommands\.getoutput\(|pty\.spawn\(")


def test_no_shell_command_lines_in_the_product() -> None:
    sources = [p for root in [REPO / "lima_core", *sorted((REPO / "plugins").glob("*/lima_driver_*"))]
               for p in root.rglob("*.py") if "/build/" not in str(p) and "/testing/" not in str(p)]
    assert len(sources) > 40
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in sources
             for n, line in enumerate(p.read_text().splitlines(), 1) if SHELL_USES.search(line)]
    assert found == []


def test_qemu_option_values_escape_commas() -> None:
    """QEMU reads `file=...,if=virtio` as an option list: a comma in a path must be doubled."""
    from lima_driver_qemu import cmdline

    from lima_core.mounts import ResolvedMount

    d = "/h/a,b"
    mount = ResolvedMount(index=0, location="/x,security_model=none", mount_point="/m", writable=True, tag="t",
                          mount_type="9p")
    spec = cmdline.Spec(name="n", instance_dir=d, arch="x86_64", accel="tcg", cpu="max", memory_mib=512, cpus=1,
                        mounts=(mount,), qemu_version=(8, 2, 0))
    args = cmdline.build(spec)
    joined = "\n".join(args)
    assert "file=/h/a,,b/disk,if=none" in joined
    assert "path=/h/a,,b/qmp.sock,server=on" in joined
    assert "path=/x,,security_model=none,security_model=" in joined
    assert "-pidfile\n/h/a,b/qemu.pid" in joined  # a plain argument: no escaping
