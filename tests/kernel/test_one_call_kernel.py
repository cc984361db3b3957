"""The one-call path (`agentcg run`, embedded): a controller that runs one call pays for nothing it does not read,
and keeps every guarantee (the CLI's guarantees are tested in test_cli_kernel.py)."""

from __future__ import annotations

import pytest

from agentcgroup.controller import Controller, ControllerConfig
from agentcgroup.limits import Limits

pytestmark = [pytest.mark.kernel]

MiB = 1 << 20


def _psi(ctl: Controller) -> list:
    return [s for s in ctl.root.sources if s.kind == "psi"]


def test_the_host_psi_trigger_is_made_once_a_budget_can_read_it(manager) -> None:
    # closing a PSI trigger waits for an RCU grace period (~10 ms): a controller without a budget makes none
    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        ctl.open_session("free")
        assert ctl.run("free", ["true"]).exit_code == 0
        assert _psi(ctl) == []
        ctl.open_session("capped", limits=Limits(memory_max=256 * MiB))
        if manager.features.psi:
            assert len(_psi(ctl)) == 1
        ctl.open_session("capped2", limits=Limits(memory_max=256 * MiB))
        assert len(_psi(ctl)) <= 1
    with Controller(manager, config=ControllerConfig(warm=0, budget=512 * MiB)) as ctl:
        if manager.features.psi:
            assert len(_psi(ctl)) == 1
