"""SSH to the guest: lima's key pair, each instance's ssh.config, and ssh commands.

Every instance is reached with the system ``ssh`` and the instance's
``ssh.config`` (``Host lima-<name>``), as ``limactl shell`` does. The key pair
``$LIMA_HOME/_config/user`` is made on first use. Connections share a
ControlMaster that the host agent starts and ends (:func:`stop_master`).
"""

from __future__ import annotations

import enum
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from . import atomicfile, dirnames, filenames, textfile
from .errors import LimaError
from .limatype import LimaYAML


class SSHError(LimaError):
    """ssh or ssh-keygen is missing or failed."""


#: ssh.config's ConnectTimeout (seconds): a guest that accepts no connection (paused, halted, still booting
#: behind QEMU's user network, which holds connections) makes ssh fail in seconds rather than hang. OpenSSH
#: applies it to the banner exchange too. The host agent's own checks pass shorter ones on the command line.
CONNECT_TIMEOUT = 10


def ssh_binary() -> str:
    path = shutil.which("ssh")
    if path is None:
        raise SSHError("the ssh command was not found; install the OpenSSH client (Debian: apt install openssh-client)")
    return path


def ensure_user_key() -> Path:
    """``_config/user`` (an ed25519 private key), created on first use."""
    config = dirnames.ensure_config_dir()
    dirnames.check_private()
    key = config / filenames.USER_KEY
    if key.exists() and key.with_suffix(".pub").exists():
        return key
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SSHError("ssh-keygen was not found; install the OpenSSH client (Debian: apt install openssh-client)")
    import filelock  # here: only creating the key needs it, not every host agent start

    with filelock.FileLock(str(config / "user.lock"), timeout=30):
        if not key.exists():
            proc = subprocess.run([keygen, "-t", "ed25519", "-q", "-N", "", "-C", "lima", "-f", str(key)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SSHError(f"ssh-keygen failed: {proc.stderr.strip()}")
    return key


def public_keys(cfg: LimaYAML | None = None) -> list[str]:
    """lima's public key, plus ``~/.ssh/*.pub`` when ``ssh.loadDotSSHPubKeys`` is true."""
    pub = ensure_user_key().with_suffix(".pub")
    keys = [textfile.read(pub).strip()]
    if len(keys[0].split()) < 2 or "\n" in keys[0] or not keys[0].split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise SSHError(f"{pub} does not hold an SSH public key; remove it and {pub.with_suffix('')} to have lima "
                       "make a new pair (the next start of each instance installs it)")
    if cfg is not None and cfg.ssh is not None and cfg.ssh.load_dot_ssh_pub_keys:
        for pub in sorted((Path.home() / ".ssh").glob("*.pub")):
            text = pub.read_text().strip()
            if text and text not in keys:
                keys.append(text)
    return keys


def host_alias(name: str) -> str:
    return f"lima-{name}"


def options(inst_dir: Path, user: str, port: int, address: str = "127.0.0.1", *, forward_agent: bool = False,
            forward_x11: bool = False, forward_x11_trusted: bool = False) -> list[tuple[str, str]]:
    """The ssh options of an instance, in ssh.config's order (values as ssh_config words)."""
    key = ensure_user_key()
    for what, value in (("user", user), ("address", address), ("key", str(key))):
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise SSHError(f"cannot write ssh options: the {what} {value!r} holds a control character")
    return [
        ("IdentityFile", _config_word(str(key))),
        ("IdentitiesOnly", "yes"),
        ("StrictHostKeyChecking", "no"),
        ("UserKnownHostsFile", "/dev/null"),
        ("NoHostAuthenticationForLocalhost", "yes"),
        ("PreferredAuthentications", "publickey"),
        ("Compression", "no"),
        ("BatchMode", "yes"),
        ("LogLevel", "ERROR"),
        ("ConnectTimeout", str(CONNECT_TIMEOUT)),
        ("ControlMaster", "auto"),
        ("ControlPath", _config_word(str(inst_dir / filenames.SSH_SOCK))),
        ("ControlPersist", "yes"),
        ("ForwardAgent", "yes" if forward_agent else "no"),
        ("ForwardX11", "yes" if forward_x11 else "no"),
        ("ForwardX11Trusted", "yes" if forward_x11_trusted else "no"),
        ("User", user),
        ("Hostname", address),
        ("Port", str(port)),
    ]


def write_config(inst_dir: Path, name: str, user: str, port: int, address: str = "127.0.0.1", *,
                 forward_agent: bool = False, forward_x11: bool = False, forward_x11_trusted: bool = False) -> Path:
    """Write the instance's ssh.config (0644) and return its path.

    Connections share one ControlMaster (``ssh.sock`` in the instance
    directory), as Lima's do: the host agent starts it, and every later ssh
    (the host agent's checks, ``lima shell``) skips the key exchange.
    """
    try:
        opts = options(inst_dir, user, port, address, forward_agent=forward_agent, forward_x11=forward_x11,
                       forward_x11_trusted=forward_x11_trusted)
    except SSHError as exc:
        raise SSHError(f"cannot write ssh.config for {name!r}: {exc.message.split(': ', 1)[1]}") from None
    text = (f"# This SSH config file can be passed to 'ssh -F'.\n# Generated by lima-core for the instance {name!r}.\n"
            f"Host {host_alias(name)}\n" + "".join(f"  {k} {v}\n" for k, v in opts))
    path = inst_dir / filenames.SSH_CONFIG
    atomicfile.write(path, text, mode=0o644)
    return path


def stop_master(inst_dir: Path, name: str) -> None:
    """End the instance's ControlMaster, if one runs (``ssh -O exit``)."""
    if not (inst_dir / filenames.SSH_SOCK).exists():
        return
    try:
        subprocess.run([ssh_binary(), "-F", str(inst_dir / filenames.SSH_CONFIG), "-O", "exit", host_alias(name)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _config_word(value: str) -> str:
    """*value* as one ssh_config argument: quoted, with ``\\`` and ``"`` escaped, and ``%`` doubled
    (ssh expands %-tokens in IdentityFile). LIMA_HOME may hold spaces, quotes or ``$(...)``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def command(inst_dir: Path, name: str, *, connect_timeout: float | None = None, tty: bool | None = None,
            master: bool = True) -> list[str]:
    """``ssh -F <inst>/ssh.config [opts] lima-<name>`` — append ``--`` and the remote command.

    *master* False: a connection of its own, neither using nor starting the ControlMaster.
    """
    args = [ssh_binary(), "-F", str(inst_dir / filenames.SSH_CONFIG)]
    if not master:
        args += ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ControlPersist=no"]
    if connect_timeout is not None:
        args += ["-o", f"ConnectTimeout={max(1, int(connect_timeout))}"]
    if tty is True:
        args.append("-t")
    elif tty is False:
        args.append("-T")
    return args + [host_alias(name)]


class Banner(enum.Enum):
    """What :func:`wait_banner` heard on the port."""

    #: the server's SSH banner: ssh can log in now
    SEEN = "seen"
    #: a refusal, a close or something not SSH: whatever answers, ssh finds out as fast
    ANSWERED = "answered"
    #: connections accepted and held without a word until the timeout (or ``give_up()``): QEMU's
    #: user network before the guest's network is up; an ssh started now would be held as long
    SILENT = "silent"


def wait_banner(host: str, port: int, timeout: float, give_up: Callable[[], bool] = lambda: False,
                interval: float = 0.3) -> Banner:
    """Wait while host:port holds connections without an SSH banner, and say what was heard.

    QEMU's user network accepts a forwarded connection before the guest
    listens, then holds it: an ssh started then waits out its whole
    ConnectTimeout. So a new connection is tried every *interval* seconds and
    the first banner ends the wait (SEEN): the guest's server is seen within
    *interval* of starting. A connection refused or closed without a banner
    ends it too (ANSWERED): nothing is holding the port, and ssh finds that
    out as fast. *timeout* and ``give_up()`` end it with SILENT.
    """
    deadline = time.monotonic() + timeout
    tries: dict[socket.socket, bytes] = {}
    next_try = 0.0
    with selectors.DefaultSelector() as sel:
        try:
            while not give_up():
                now = time.monotonic()
                if now >= deadline:
                    return Banner.SILENT
                if now >= next_try:
                    next_try = now + interval
                    try:
                        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
                    except OSError:
                        return Banner.ANSWERED  # no socket: ssh will say why
                    s.setblocking(False)
                    s.connect_ex((host, port))
                    sel.register(s, selectors.EVENT_READ)
                    tries[s] = b""
                for key, _ in sel.select(timeout=max(0.0, min(next_try, deadline) - time.monotonic())):
                    s = key.fileobj  # type: ignore[assignment]
                    try:
                        data = s.recv(256)
                    except BlockingIOError:
                        continue
                    except OSError:  # refused or reset
                        data = b""
                    seen = tries[s] + data
                    if b"SSH-" in seen:
                        return Banner.SEEN
                    if not data or b"\n" in seen or len(seen) > 1024:
                        return Banner.ANSWERED  # closed, or not SSH: ssh will say what it is
                    tries[s] = seen
            return Banner.SILENT
        finally:
            for s in tries:
                s.close()
