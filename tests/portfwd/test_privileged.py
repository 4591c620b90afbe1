"""A host port this host agent may not bind (a privileged port, as a user): reported, once.

The host agent's forwarding runs in a forked child as the user ``nobody`` (the tests run as root here;
a fork, since nobody may not be able to run this interpreter), given a guest listener by a lima.yaml rule
and one by Lima's default rule.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from lima_core.hostagent import portfwd, portrules


def _forward_as_nobody() -> dict:
    """In the child: as nobody, the forwards of two guest listeners, each reported twice."""
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    records = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append([record.levelname, record.getMessage()])

    logger = logging.getLogger("lima_core")
    logger.handlers[:] = [Capture()]
    logger.setLevel(logging.INFO)
    rules = [portrules.Rule(0, guest_ports=(8080, 8080), host_ports=(80, 80)), portrules.Rule(-1)]
    events: list = []
    pf = portfwd.PortForwarding(inst_dir=Path("/nonexistent"), name="x", driver=None, rules=rules, plain=False,
                                skip_sockets=False, little_endian=True, emit=lambda **kw: events.append(kw))
    for ip, port in (("127.0.0.1", 8080), ("0.0.0.0", 443)):
        pf.loop.run_until_complete(pf._guest_listening("tcp", ip, port))
        pf.loop.run_until_complete(pf._guest_listening("tcp", ip, port))  # reported again: nothing new
    return {"events": events, "log": records, "status": pf._status()}


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to the user nobody")
@pytest.mark.skipif(int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80,
                    reason="any user may bind port 80 on this host")
def test_a_privileged_host_port_is_reported_once() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            result = json.dumps(_forward_as_nobody()).encode()
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            result, code = repr(exc).encode(), 1
        with os.fdopen(write, "wb") as f:
            f.write(result)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    out = json.loads(data)
    status = {f["hostAddr"]: f for f in out["status"]["portForwards"]}
    rule = status["127.0.0.1:80"]
    assert rule["state"] == "failed" and "a privileged port" in rule["error"]
    # the rule asked for port 80: a warning, and a failed event; once
    warnings = [m for level, m in out["log"] if level == "WARNING"]
    assert warnings == ["cannot forward TCP from 127.0.0.1:8080 to 127.0.0.1:80: binding 127.0.0.1:80 needs "
                        "privileges this host agent does not have (a privileged port)"]
    failed = [e for e in out["events"] if e["port_forward"]["type"] == "failed"]
    assert len(failed) == 1 and failed[0]["message"] == "WARNING: " + warnings[0]
    # the default rule chose 443: Lima's "Not forwarding", at info level
    assert ["INFO", "Not forwarding TCP 127.0.0.1:443: binding 127.0.0.1:443 needs privileges this host agent "
                    "does not have (a privileged port)"] in out["log"]
    assert [e["port_forward"]["type"] for e in out["events"]] == ["failed", "not-forwarding"]
