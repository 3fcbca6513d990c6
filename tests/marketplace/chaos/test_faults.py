"""A seed names a run's faults: the same plan on every call, every kind within the first runs."""

from __future__ import annotations

from marketplace.chaos.faults import FaultKind, FaultPlan

PROVIDERS = ("provider-1", "provider-2")


def test_a_seed_gives_the_same_faults_every_time() -> None:
    assert FaultPlan(5).run(2, PROVIDERS) == FaultPlan(5).run(2, PROVIDERS)
    assert FaultPlan(5).run(2, PROVIDERS) != FaultPlan(6).run(2, PROVIDERS)


def test_the_first_two_runs_inject_every_kind_in_time_order_within_the_window() -> None:
    plan = FaultPlan(1, faults_per_run=3, window_s=40.0, outage_s=30.0)
    runs = [plan.run(index, PROVIDERS) for index in range(2)]
    assert {fault.kind for faults in runs for fault in faults} == set(FaultKind)
    for faults in runs:
        assert [fault.at_s for fault in faults] == sorted(fault.at_s for fault in faults)
        for fault in faults:
            assert 1.0 <= fault.at_s <= 40.0
            if fault.kind == FaultKind.RPC_OUTAGE:
                assert fault.pause_s == 30.0
            if fault.kind == FaultKind.KILL_PROVIDER:
                assert fault.target in PROVIDERS
            elif fault.kind in (FaultKind.KILL_VERIFIER, FaultKind.KILL_NODE):
                assert fault.target == fault.kind.removeprefix("kill-")
