"""The guest user: who ``lima shell`` logs in as, created in the guest by cidata.

As in Lima, the guest user mirrors the host user: same name and uid, home
``/home/<name>.guest``, shell ``/bin/bash``; ``user:`` in lima.yaml overrides
each field. A host name that is not a valid Linux user name becomes ``lima``.
Lima refuses to run as root; lima-core allows it and maps the root user to
``lima`` with uid 1000, so the guest never gets a second uid-0 account.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re

from .limatype import LimaYAML

_VALID_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
FALLBACK_NAME = "lima"
FALLBACK_UID = 1000


def valid_name(name: str) -> bool:
    """A Linux user name (useradd's rule): it goes into ssh.config, cidata and the guest's passwd."""
    return _VALID_NAME.fullmatch(name) is not None


@dataclasses.dataclass(frozen=True)
class GuestUser:
    name: str
    uid: int
    home: str
    shell: str
    comment: str


def host_user() -> tuple[str, int]:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = FALLBACK_NAME
    uid = os.getuid() if hasattr(os, "getuid") else FALLBACK_UID
    return name, uid


def guest_user(config: LimaYAML | None = None) -> GuestUser:
    name, uid = host_user()
    comment = name
    if uid == 0 or not valid_name(name):
        name, uid = FALLBACK_NAME, FALLBACK_UID if uid == 0 else uid
    u = config.user if config is not None and config.user is not None else None
    name = (u.name if u and u.name else None) or name
    uid = (u.uid if u and u.uid is not None else None) or uid
    home = (u.home if u and u.home else None) or f"/home/{name}.guest"
    if "{{" in home:  # Lima's templates write "/home/{{.User}}.linux"
        from .gotemplate import expand

        home = expand(home, {"User": name, "UID": uid}, "user.home")
    return GuestUser(
        name=name,
        uid=uid,
        home=home,
        shell=(u.shell if u and u.shell else None) or "/bin/bash",
        comment=(u.comment if u and u.comment else None) or comment,
    )
