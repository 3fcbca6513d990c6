"""``webi provider bench``: a table (or JSON) of tasks a second per task type and device, saved where the daemon
reads it, and the daemon's first claims of a task type sized by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from provider.bench import REPORT_FILE, BenchReport, DeviceBench
from provider.capacity import Held, Limits, refusal
from tests.provider.test_cli import webi
from tests.provider.test_daemon import running


def test_bench_measures_every_task_on_the_cpu_prints_json_and_saves_it(tmp_path: Path) -> None:
    done = webi("bench", "--workload", "tiny", "--task", "embed", "--task", "generate", "--json",
                home=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [cpu] = [device for device in report["devices"] if device["kind"] == "cpu"]
    assert set(cpu["tasks_per_s"]) == {"embed", "generate"} and all(rate > 0 for rate in cpu["tasks_per_s"].values())
    assert report["workload"] == "tiny" and Path(report["saved"]).name == REPORT_FILE
    assert BenchReport.load(Path(report["saved"]).parent) == BenchReport.from_dict(report)
    table = webi("bench", "--workload", "tiny", "--task", "classify", "--no-save", home=tmp_path)
    assert table.returncode == 0 and "classify" in table.stdout and "tasks/s" in table.stdout
    assert "saved" not in table.stdout


@pytest.mark.parametrize(("args", "message"), [(["--workload", "huge"], "'huge': one of standard, tiny"),
                                               (["--task", "dance"], "one of embed, generate")])
def test_bench_refuses_an_unknown_workload_or_task(tmp_path: Path, args: list[str], message: str) -> None:
    done = webi("bench", *args, home=tmp_path)
    assert done.returncode == 2 and message in done.stderr


def test_the_rate_is_every_gpu_at_once_or_the_cpu_and_an_unreadable_report_is_none(tmp_path: Path) -> None:
    cpu = DeviceBench("cpu", "x86_64", {"embed": 100.0})
    gpus = (DeviceBench("cuda", "H200", {"embed": 4_000.0}), DeviceBench("cuda", "H200", {"embed": 3_000.0}))
    assert BenchReport("standard", (cpu,)).rate("embed") == 100.0
    report = BenchReport("standard", (cpu, *gpus))
    assert report.rate("embed") == 7_000.0 and report.speedup(gpus[0], "embed") == 40.0
    assert report.rate("generate") is None
    (tmp_path / REPORT_FILE).write_text("{not json")
    assert BenchReport.load(tmp_path) is None and BenchReport.load(tmp_path / "none") is None


def test_the_daemon_sizes_a_task_type_it_never_ran_by_the_bench(config_for, provider: LocalAccount) -> None:
    """Without a bench, 20,000 embed tasks in 60 s are refused at the assumed slow CPU's 50 a second; a bench of
    2,000 a second lets them be claimed, and a real run's figure replaces the bench's."""
    config = config_for(provider)
    huge = Held(1, 20_000, "embed", 1_000_060)
    assert refusal([], huge, now=1_000_000, rates={"embed": None}, limits=Limits()) is not None
    BenchReport("standard", (DeviceBench("cpu", "x86_64", {"embed": 2_000.0}),)).save(config.state)
    with running(config, provider) as daemon:
        assert daemon._rate("embed") == 2_000.0 and daemon._rate("generate") is None
        assert refusal([], huge, now=1_000_000, rates={"embed": daemon._rate("embed")}, limits=Limits()) is None
        daemon.throughput.record("embed", 100, 10.0)
        assert daemon._rate("embed") == 10.0
