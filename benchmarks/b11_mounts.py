"""B11: read and write throughput of each mount type (9p, virtiofs, reverse-sshfs) against the guest's own disk.

One instance of the Debian test guest with real cloud-init (``scripts/build-cloud-guest``,
``templates/test-guest-cloud.yaml``) per mount type, since Lima has one mountType per
instance, each with one writable mount of a directory in the benchmark's LIMA_HOME. In each
instance, as the guest user, for the mount and for a directory on the guest's own disk (its
home), in alternating order: ``dd`` writes a file of zeros with ``conv=fsync``, the guest's page
cache is dropped, and ``dd`` reads the file back. Each side is timed inside the guest (``date
+%s.%N`` around ``dd``), so SSH's cost is not counted. The floor is the guest's disk in the same
instance and the same run; the ratio is the mount's throughput over the disk's (below 1: slower
than the disk). No target: Lima users pick a mount type by these figures.

The host's page cache is left alone: a file just written is read back from it on every side
(the disk image is a file on the host too), which is what a user sees right after writing.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from . import _env, _timing

ID = "B11"
TYPES = ("9p", "virtiofs", "reverse-sshfs")
START_TIMEOUT = 1200.0
MOUNT_POINT = "/mnt/b11"

#: $1: the directory, $2: MiB. Prints the start and end of the write and of the read (seconds since the epoch).
SCRIPT = r"""
set -e
f="$1/lima-b11.$$"
sync
t0=$(date +%s.%N)
dd if=/dev/zero of="$f" bs=1M count="$2" conv=fsync status=none
t1=$(date +%s.%N)
sync
echo 3 | sudo -n tee /proc/sys/vm/drop_caches >/dev/null
t2=$(date +%s.%N)
dd if="$f" of=/dev/null bs=1M status=none
t3=$(date +%s.%N)
rm -f "$f"
echo "$t0 $t1 $t2 $t3"
"""


def cloud_guest_template() -> Path:
    """templates/test-guest-cloud.yaml, once image B is built. :raises _env.Skip: it is not."""
    built = _env.REPO / ".cache" / "cloud-guest" / "current"
    if not all((built / f).is_file() for f in ("disk.qcow2", "vmlinux", "initrd.img", "manifest.json")):
        raise _env.Skip("the cloud-init test guest is not built: run `.venv/bin/python scripts/build-cloud-guest` "
                        "as root")
    return _env.REPO / "templates" / "test-guest-cloud.yaml"


def throughput(line: str, mib: int) -> tuple[float, float]:
    """(write MiB/s, read MiB/s) from the script's output line."""
    t0, t1, t2, t3 = (float(x) for x in line.split())
    return mib / (t1 - t0), mib / (t3 - t2)


def run(opts: _env.Options) -> list[_timing.Row]:
    template = cloud_guest_template()
    mib = 16 if opts.quick else 128
    rows: list[_timing.Row] = []
    with _env.private_home(opts, "b11") as home:
        env = _env.env(home)
        lima = _env.lima_command()
        for mount_type in TYPES:
            name = "b11-" + mount_type.replace("reverse-", "r")
            share = home / f"share-{name}"
            share.mkdir()
            spec = home / f"{name}.yaml"
            spec.write_text(yaml.safe_dump({
                "base": str(template), "mountType": mount_type, "containerd": {"system": False, "user": False},
                "mounts": [{"location": str(share), "mountPoint": MOUNT_POINT, "writable": True}]}))
            _env.run([*lima, "create", "--name", name, str(spec)], env=env)
            try:
                _env.run([*lima, "start", name], env=env, timeout=START_TIMEOUT)
                home_dir = json.loads(_env.run([*lima, "list", "--format", "json", name], env=env).stdout)[
                    "config"]["user"]["home"]
                samples = _measure(lima, env, name, {"mount": MOUNT_POINT, "disk": home_dir}, mib, opts)
            finally:
                _env.run([*lima, "stop", "-f", name], env=env, check=False)
                _env.run([*lima, "delete", "-f", name], env=env, check=False)
            for i, op in enumerate(("write", "read")):
                mount = [s[i] for s in samples["mount"]]
                disk = [s[i] for s in samples["disk"]]
                rows.append(_timing.Row(
                    id=ID, what=f"{mount_type} {op} ({mib} MiB, dd, guest user)", unit="MiB/s",
                    value=_timing.median(mount), floor=f"guest disk {op}", floor_value=_timing.median(disk),
                    samples=mount, floor_samples=disk, load=_timing.load(),
                    extra={"mount_type": mount_type, "op": op, "mib": mib, "runs": len(mount)}))
    return rows


def _measure(lima: list[str], env: dict[str, str], name: str, dirs: dict[str, str], mib: int,
             opts: _env.Options) -> dict[str, list[tuple[float, float]]]:
    """(write, read) MiB/s per run for each directory, the directories alternating in order."""
    out: dict[str, list[tuple[float, float]]] = {side: [] for side in dirs}
    sides = list(dirs)
    for i in range(opts.warmup + opts.runs):
        for side in sides if i % 2 == 0 else reversed(sides):
            proc = _env.run([*lima, "shell", name, "sh", "-c", SCRIPT, "sh", dirs[side], str(mib)], env=env,
                            timeout=900)
            if i >= opts.warmup:
                out[side].append(throughput(proc.stdout.strip().splitlines()[-1], mib))
    return out
