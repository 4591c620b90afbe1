"""Fixtures of the guest agent tests (see agentkit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agentkit import AgentProcess, Host


@pytest.fixture
def start_agent(short_tmp: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(*args: str) -> AgentProcess:
        agent = AgentProcess(short_tmp, *args)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.stop()


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host()
    yield h
    h.close()
