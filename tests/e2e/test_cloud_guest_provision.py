"""Lima's guest side on the Debian test guest with real cloud-init: every provision mode in Lima's order,
a probe, a deliberately failing script reported by name, containerd from a local archive, an additional
disk formatted at first use, and the guest environment lima.yaml asks for.

Two boots of one instance (direct kernel boot, the fast way): the first ends degraded because one system
provision fails on first boot only; the second is READY and runs the ansible playbook on the host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from guests import CloudGuest

NAME = "prov"

TEMPLATE = """\
base: {base}
containerd:
  system: false
  user: true
  archives:
  - location: {archive}
    arch: x86_64
timezone: Asia/Tokyo
param:
  COLOR: blue
env:
  GREETING: hello world
caCerts:
  certs:
  - |
{cert}
provision:
- mode: boot
  script: |
    #!/bin/sh
    echo "boot $PARAM_COLOR" >> /run/order
- mode: dependency
  script: |
    #!/bin/sh
    echo "dependency" >> /run/order
- mode: data
  path: "{{{{.Home}}}}/data.txt"
  owner: "{{{{.User}}}}"
  permissions: "600"
  content: |
    data for {{{{.User}}}}
- mode: system
  script: |
    #!/bin/bash
    echo "system $PARAM_COLOR $GREETING $(stat -c %U:%a {{{{.Home}}}}/data.txt)" >> /run/order
    touch /run/probe-ok
- mode: system
  script: |
    #!/bin/sh
    # fails on the first boot only
    if [ ! -e /var/lib/failed-once ]; then
      touch /var/lib/failed-once
      echo "deliberate failure, first boot"
      exit 3
    fi
- mode: user
  script: |
    #!/bin/sh
    echo "user $(id -un) $XDG_RUNTIME_DIR $PARAM_COLOR" >> /tmp/order-user
- mode: ansible
  playbook: {playbook}
probes:
- description: the system provision has run
  script: |
    #!/bin/bash
    for i in $(seq 120); do test -e /run/probe-ok && exit 0; sleep 1; done
    echo "no /run/probe-ok"; exit 1
  hint: the system provision did not run
additionalDisks:
- data
copyToHost:
- guest: /run/order
  host: "{{{{.Dir}}}}/copied/order"
  deleteOnStop: true
"""

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
  - name: leave a mark
    ansible.builtin.command: touch /tmp/from-ansible
"""

CHECKS = r"""
echo "order=$(tr '\n' ';' </run/order)"
echo "user-order=$(cat /tmp/order-user)"
echo "greeting=$GREETING"
echo "timezone=$(cat /etc/timezone)"
echo "host-lima-internal=$(getent hosts host.lima.internal | awk '{print $1}')"
echo "cert-trusted=$(grep -c "$CERT_LINE" /etc/ssl/certs/ca-certificates.crt)"
echo "cidata-mode=$(sudo -n stat -c %a /mnt/lima-cidata)"
echo "nerdctl=$(/usr/local/bin/nerdctl --version)"
echo "rootless-setup=$(tr '\n' ';' <"$HOME/setuptool.log")"
echo "disk=$(findmnt -no SOURCE,FSTYPE /mnt/lima-data | tr -s ' ' ,)"
echo "disk-label=$(sudo -n blkid -s LABEL -o value /dev/vdb1)"
echo "boot-done=$(cat /run/lima-boot-done)"
echo "ssh-ready=$(cat /run/lima-ssh-ready)"
"""


#: nerdctl-full stands in for the real archive (a download this machine cannot make): a nerdctl and the
#: rootless setup tool, which records how the boot script calls it
FAKE_NERDCTL_FULL = {
    "bin/nerdctl": "#!/bin/sh\necho 'nerdctl version 9.9.9'\n",
    "bin/containerd-rootless-setuptool.sh": "#!/bin/sh\necho \"$@\" >> \"$HOME/setuptool.log\"\n",
}


def _nerdctl_full(tmp_path: Path) -> Path:
    import io
    import tarfile

    path = tmp_path / "nerdctl-full.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in FAKE_NERDCTL_FULL.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text.encode()), 0o755
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def _self_signed_cert(tmp_path: Path) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a CA certificate")
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=lima-core test CA"], check=True, capture_output=True)
    return cert.read_text()


@pytest.mark.vm
@pytest.mark.timeout(1800)  # two first-ish boots of a systemd guest under TCG
def test_provisions_probes_and_failures_on_a_real_cloud_init_guest(cloud_guest: CloudGuest, lima, lima_env,
                                                                   tmp_path: Path) -> None:
    if shutil.which("ansible-playbook", path=lima_env["PATH"]) is None:
        pytest.skip("ansible-playbook (ansible-core, a test dependency) is not installed")
    cert = _self_signed_cert(tmp_path)
    playbook = tmp_path / "mark.yaml"
    playbook.write_text(PLAYBOOK)
    template = tmp_path / "prov.yaml"
    template.write_text(TEMPLATE.format(base=cloud_guest.template, playbook=playbook, archive=_nerdctl_full(tmp_path),
                                        cert="\n".join("    " + line for line in cert.splitlines())))
    home = Path(lima_env["LIMA_HOME"])
    lima("disk", "create", "data", "--size", "1GiB")
    lima("create", "--name", NAME, str(template))

    # First boot: every requirement is shown while awaited; the failing script is named, with its output;
    # the start ends degraded (non-zero) and the VM keeps running.
    r = lima("start", NAME, ok=False, timeout=900)
    err = r.stderr
    for shown in ("Waiting for the essential requirement 1 of 3: 'ssh'",
                  "Waiting for the essential requirement 2 of 3: 'user session is ready for ssh'",
                  "Waiting for the optional requirement 1 of 3: 'systemd must be available'",
                  "Waiting for the optional requirement 2 of 3: 'containerd binaries to be installed'",
                  "Waiting for the optional requirement 3 of 3: 'the system provision has run'",
                  "Waiting for the final requirement 1 of 1: 'boot scripts must have finished'"):
        assert shown in err, err
    assert "provision[4] (mode: system, '# fails on the first boot only') failed with exit status 3" in err, err
    assert "deliberate failure, first boot" in err
    assert "DEGRADED" in err and "READY" not in err
    assert json.loads(lima("list", "--format", "json", NAME).stdout)["status"] == "Running"

    cert_line = next(line for line in cert.splitlines() if line and not line.startswith("-----"))
    r = lima("shell", NAME, "env", f"CERT_LINE={cert_line}", "sh", "-c", CHECKS, timeout=120)
    got = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    user = json.loads(lima("list", "--format", "json", NAME).stdout)["config"]["user"]
    # Lima's order: boot (cloud-init's bootcmd), dependency (30-install-packages.sh), data, system, user.
    assert got["order"] == f"boot blue;dependency;system blue hello world {user['name']}:600;"
    assert got["user-order"] == f"user {user['name']} /run/user/{user['uid']} blue"
    assert got["greeting"] == "hello world"  # env: in /etc/environment, read at login
    assert got["timezone"] == "Asia/Tokyo"
    assert got["host-lima-internal"] == "192.168.5.2"
    assert int(got["cert-trusted"]) >= 1
    assert got["cidata-mode"] == "700"  # cidata is root's alone
    assert got["boot-done"] == got["ssh-ready"] and got["boot-done"].startswith("iid-")
    # additionalDisks: the new disk partitioned and formatted at first use, mounted at /mnt/lima-data
    assert got["disk"] == "/dev/vdb1,ext4" and got["disk-label"] == "lima-data"
    lima("shell", NAME, "sudo", "sh", "-c", "echo kept > /mnt/lima-data/mark")
    # containerd.user: the archive from cidata installed under the prefix, the rootless setup run as the user
    assert got["nerdctl"] == "nerdctl version 9.9.9"
    assert got["rootless-setup"].startswith("install;install-buildkit-containerd;")
    copied = home / NAME / "copied" / "order"
    assert copied.read_text().startswith("boot blue\n") and copied.stat().st_mode & 0o777 == 0o600

    lima("stop", NAME, timeout=180)
    assert not copied.exists()  # deleteOnStop

    # Second boot: a new instance id, every provision again, nothing fails; READY, the playbook ran.
    r = lima("start", NAME, timeout=900)
    assert "READY" in r.stderr and "DEGRADED" not in r.stderr, r.stderr
    assert lima("shell", NAME, "test", "-e", "/tmp/from-ansible", ok=None).returncode == 0
    assert lima("shell", NAME, "cat", "/mnt/lima-data/mark").stdout == "kept\n"  # not formatted again
    new_iid = lima("shell", NAME, "cat", "/run/lima-boot-done").stdout.strip()
    assert new_iid.startswith("iid-") and new_iid != got["boot-done"]
    assert copied.read_text() == "boot blue\ndependency\n" + f"system blue hello world {user['name']}:600\n"
    lima("stop", NAME, timeout=180)
