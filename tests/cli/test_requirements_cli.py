"""What `lima start` says about the host agent's requirements: each while it waits, the one it still waits
for (and why) when its --timeout runs out, and a degraded start's errors with a non-zero exit."""

from __future__ import annotations

from pathlib import Path


def _template(fake_template: Path, extra: str) -> Path:
    path = fake_template.with_name("req.yaml")
    path.write_text(fake_template.read_text() + "containerd: {system: false, user: false}\n" + extra)
    return path


def test_the_timeout_names_the_requirement_still_awaited(lima, driver_mode: str, fake_ssh: Path,
                                                        fake_template: Path, instances: list[str]) -> None:
    tmpl = _template(fake_template, "probes:\n- description: the service is up\n  script: |\n"
                                    "    #!/bin/sh\n    echo 'service: connection refused'; exit 1\n"
                                    "  hint: start the service\n")
    instances.append("r1")
    r = lima("start", "--name", "r1", "--timeout", "8s", str(tmpl), ok=False)
    assert "Waiting for the optional requirement 1 of 1: 'the service is up'" in r.stderr
    assert ("did not become ready within 8 s; still waiting for 'the service is up' "
            "(last error: service: connection refused)") in r.stderr
    assert "Traceback" not in r.stderr
    lima("stop", "-f", "r1", ok=True)


def test_a_failed_copy_to_host_makes_the_start_degraded(lima, driver_mode: str, fake_ssh: Path,
                                                        fake_template: Path, instances: list[str],
                                                        lima_home: Path) -> None:
    tmpl = _template(fake_template, "copyToHost:\n- guest: /nonexistent/file\n  host: '{{.Dir}}/copied'\n"
                                    "- guest: /nonexistent/other\n  host: '{{.Dir}}/other'\n  skipIfMissing: true\n")
    instances.append("r2")
    r = lima("start", "--name", "r2", str(tmpl), ok=False)
    assert "copyToHost[0]: cannot read /nonexistent/file in the guest" in r.stderr
    assert "copyToHost[1]" not in r.stderr  # skipIfMissing
    assert "DEGRADED" in r.stderr and "READY" not in r.stderr
    assert '"status": "Running"' in lima("list", "--format", "json", "r2", ok=True).stdout  # the VM stays up
    lima("stop", "r2", ok=True)
