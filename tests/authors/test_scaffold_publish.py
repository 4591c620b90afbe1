"""A driver from `lima drivers new`, filled in so that it boots the test guest, checked as it will be
published: its wheel, installed with lima-core's wheel into a fresh virtualenv, passes the conformance
kit there, in-process and external, booting the guest to READY.

The filling-in is what an author does to the scaffold: ``start`` runs QEMU (as
examples/lima-driver-microvm does) with the command line in ``data/qemu.args``, a file the
driver reads at run time with importlib.resources; ``placeholder_vm.py`` goes. The same project
without its package-data declaration builds a wheel that lacks the file, and that wheel fails the
kit, naming the driver's own line.
"""

from __future__ import annotations

import ast
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import Venv, build_wheel, fresh_venv
from lima_core.cli import drivers_new

NAME = "guesty"
PACKAGE = "lima_driver_guesty"
DATA_FILE = f"{PACKAGE}/data/qemu.args"

QEMU_ARGS = """\
# QEMU's command line for the guest, one argument per line; driver.py fills in the {placeholders}.
qemu-system-x86_64
-accel
tcg
-smp
1
-m
512
-nodefaults
-no-user-config
-display
none
-kernel
{dir}/kernel
-initrd
{dir}/initrd
-append
{cmdline}
-serial
file:{dir}/serial.log
-drive
file={dir}/cidata.iso,if=virtio,format=raw,readonly=on
-netdev
user,id=n0,net=192.168.5.0/24,dhcpstart=192.168.5.15,hostfwd=tcp:127.0.0.1:{ssh_port}-:22
-device
virtio-net-pci,netdev=n0
-device
virtio-rng-pci
"""

START = '''\
    @hookimpl
    def start(self) -> StartHandle:
        """Boot QEMU with the command line in ``data/qemu.args`` (package data)."""
        if pidfile.read(self._pid_path, expect=VM_MARKER).alive:
            raise StartFailed(f"the VM of {self.dir.name} is already running")
        assert self.instance is not None
        cmdline = self.dir / filenames.KERNEL_CMDLINE
        values = {"dir": str(self.dir), "ssh_port": self.instance.ssh_local_port,
                  "cmdline": cmdline.read_text().strip() if cmdline.exists() else "console=ttyS0"}
        lines = (resources.files(__package__) / "data" / "qemu.args").read_text().splitlines()
        args = [line.format(**values) for line in lines if line.strip() and not line.startswith("#")]
        with open(self.dir / f"{NAME}.log", "ab") as out:
            try:
                proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True)
            except OSError as exc:
                raise StartFailed(f"cannot start the VM: {exc.strerror}") from exc
        pidfile.write(self._pid_path, proc.pid)
        return StartHandle.for_process(proc, f"{NAME} VM", on_cancel=proc.kill)
'''


def fill_in(project: Path) -> None:
    """Make the scaffold boot a guest: a real start, QEMU as the VM, the placeholder gone."""
    driver = project / PACKAGE / "driver.py"
    text = driver.read_text()
    tree = ast.parse(text)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    start = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "start")
    lines = text.splitlines(keepends=True)
    first = start.decorator_list[0].lineno - 1
    text = "".join(lines[:first]) + START + "".join(lines[start.end_lineno:])
    text, n = re.subn(r'^VM_MARKER = .*$', 'VM_MARKER = "qemu-system-x86_64"', text, flags=re.M)
    assert n == 1, "the scaffold's VM_MARKER moved"
    assert "from .placeholder_vm import READY\n" in text and "from importlib import resources\n" in text
    driver.write_text(text.replace("from .placeholder_vm import READY\n", ""))
    (project / PACKAGE / "placeholder_vm.py").unlink()
    (project / PACKAGE / "data" / "qemu.args").write_text(QEMU_ARGS)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = drivers_new.write(NAME, tmp_path_factory.mktemp("authors"))
    fill_in(project)
    return project


@pytest.fixture(scope="module")
def wheel(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = build_wheel(project, tmp_path_factory.mktemp("dist"))
    with zipfile.ZipFile(wheel) as whl:
        assert DATA_FILE in whl.namelist()
        assert f"{PACKAGE}/data/boot.Linux/10-{NAME}.sh" in whl.namelist()
    return wheel


@pytest.fixture(scope="module")
def venv(wheel: Path, scratch_venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtualenv holding lima-core's wheel and the driver's, with pytest to run the kit."""
    venv = fresh_venv(tmp_path_factory, scratch_venv, "guesty-venv")
    venv.install(venv.wheel, wheel, "pytest", "pytest-timeout")
    return venv


@pytest.mark.vm
@pytest.mark.parametrize("external", [False, True], ids=["in-process", "external"])
def test_the_filled_in_wheel_conforms_booting_the_guest(venv: Venv, guest_template: Path, tmp_path: Path,
                                                       external: bool) -> None:
    args = ["pytest", "-p", "no:cacheprovider", "--lima-driver", NAME, "--lima-driver-template", guest_template,
            "--lima-driver-boot-timeout", "180"] + (["--lima-driver-external"] if external else [])
    r = venv.run(*args, cwd=tmp_path, check=False)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert f"lima driver conformance: {NAME} ({'external' if external else 'in-process'})" in out
    if external:  # the console script the wheel installed
        assert f"driver      {venv.bin}/lima-driver-{NAME} (found by console script)" in out
    else:
        assert f"driver      entry point {PACKAGE}.driver:GuestyDriver (lima-driver-{NAME} 0.1.0)" in out
    assert "start stream                              passed" in out
    assert "boots to ready                            passed" in out
    assert f"{NAME} conforms to the driver contract (all 11 checks passed)" in out


@pytest.mark.vm
def test_without_its_package_data_the_wheel_fails_the_kit_at_the_drivers_line(
        project: Path, scratch_venv: Venv, guest_template: Path, tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    """The bug this guards against: every test of the checkout passes, the published driver does not."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    declaration = f'[tool.setuptools.package-data]\n{PACKAGE} = ["data/**/*"]\n'
    assert declaration in text
    bare = tmp_path_factory.mktemp("bare") / project.name
    shutil.copytree(project, bare, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    (bare / "pyproject.toml").write_text(text.replace(declaration, ""))
    wheel = build_wheel(bare, tmp_path_factory.mktemp("bare-dist"))
    with zipfile.ZipFile(wheel) as whl:
        assert DATA_FILE not in whl.namelist()
    venv = fresh_venv(tmp_path_factory, scratch_venv, "bare-venv")
    venv.install(venv.wheel, wheel, "pytest", "pytest-timeout")
    r = venv.run("pytest", "-p", "no:cacheprovider", "--lima-driver", NAME, "--lima-driver-template",
                 guest_template, "-k", "start_stream or boot_script", cwd=tmp_path, check=False)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    # cidata is written before start, with the boot scripts the driver reads from data/boot.Linux
    line = next(line for line in out.splitlines() if line.startswith("start stream "))
    assert "failed: DriverError: driver 'guesty' failed in boot_scripts: [Errno 2] No such file or " \
           "directory" in line, line
    assert re.search(rf"\(at {PACKAGE}/driver\.py:\d+ in boot_scripts\)$", line), line
    assert "boot script keys                          failed" in out
