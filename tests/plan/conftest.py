"""Fixtures for planner tests: a service over a fresh store and the test secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipsecconf.engine.service import Planned, Service, StoreBackend
from ipsecconf.plan.planfile import Inputs
from tests.stateutil import GW_PSK, PSK, write


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("TEST_PSK", PSK)
    monkeypatch.setenv("TEST_GW_PSK", GW_PSK)
    svc = Service(StoreBackend(str(tmp_path / "state.db")))
    yield svc
    svc.backend.close()


PlanFn = Callable[..., Planned]


@pytest.fixture
def plan_text(service: Service, tmp_path: Path) -> PlanFn:
    """Plan a configuration text (``prune`` optional)."""

    def run(text: str, *, prune: bool = False) -> Planned:
        path = write(tmp_path / "cfg", text)
        return service.plan(Inputs.make([str(path)], {}, [], prune))

    return run


@pytest.fixture
def apply_text(service: Service, plan_text: PlanFn) -> PlanFn:
    """Plan and apply a configuration text."""

    def run(text: str, *, prune: bool = False) -> Planned:
        planned = plan_text(text, prune=prune)
        service.apply(planned)
        return planned

    return run
