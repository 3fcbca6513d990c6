"""``webi demo`` end to end with tiny models: real anvil, node, provider and verifier processes.

Both scenarios run the CLI as a process with ``--json`` and check the books against amounts computed
here from the contract's rules (the default terms and parameters of a fresh devnet) and the jobs'
terms: an honest verifier catching a cheat, then a lazy verifier passing it, caught by a watchtower
and slashed by a panel. The first also runs an Open confidential embed job whose first input is a
canary, audited end to end, and searches every file of the run (stores, logs, the node's SQLite
index) and the dashboard for the canary and for a decrypted output: neither may be there in clear.
It also posts the embed job as a group of 4 shards that two embed providers build between them: each
shard is paid to whoever built it, and the merged result holds every input's output.
It ends by checking that Ctrl-C stops every process the demo started.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.chain.deployment import WEI
from marketplace.demo.options import (
    CANARY_ENV,
    GENERATE_TASKS,
    GROUP_PRICE_WEI,
    GROUP_SAMPLE_TASKS,
    GROUP_SHARDS,
    JOB_PRICE_WEI,
    SAMPLE_TASKS,
    STAKE_WEBI,
)
from marketplace.protocol import BPS, PANEL_SIZE
from tests.marketplace.demo.leaks import leaks, open_as_requester
from tests.support.models import build_bundle
from tests.support.waiting import wait_for

CORPUS_TASKS = 24
# The devnet's default terms and parameters (``deploy_devnet``), as the contract applies them.
VERIFIER_FEE_BPS, PROTOCOL_FEE_BPS, COLLATERAL_BPS = 20_000, 250, 5_000
REWARD_BPS, VERIFIER_SLASH_BPS = 1_000, 5_000

EMBED_FEE = JOB_PRICE_WEI * SAMPLE_TASKS * VERIFIER_FEE_BPS // (CORPUS_TASKS * BPS)
GENERATE_FEE = JOB_PRICE_WEI * SAMPLE_TASKS * VERIFIER_FEE_BPS // (GENERATE_TASKS * BPS)
PROTOCOL_FEE = JOB_PRICE_WEI * PROTOCOL_FEE_BPS // BPS
COLLATERAL = JOB_PRICE_WEI * COLLATERAL_BPS // BPS
COLLATERAL_REWARD = COLLATERAL * REWARD_BPS // BPS  # to whoever proved the fault; the rest is burned
# The job group: the corpus again in equal shards, each priced, audited and paid as a job of its own.
SHARD_TASKS, SHARD_PRICE = CORPUS_TASKS // GROUP_SHARDS, GROUP_PRICE_WEI // GROUP_SHARDS
SHARD_FEE = SHARD_PRICE * GROUP_SAMPLE_TASKS * VERIFIER_FEE_BPS // (SHARD_TASKS * BPS)
SHARD_PROTOCOL_FEE = SHARD_PRICE * PROTOCOL_FEE_BPS // BPS
SHARD_PAYMENT = SHARD_PRICE - SHARD_PROTOCOL_FEE
CANARY = "CANARY-7f3a-" + random.Random(17).randbytes(8).hex()


def _demo(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``webi demo --json`` with tiny models; its stderr (progress, tables, logs) goes to demo.stderr."""
    embed = build_bundle("embed", tmp_path / "tiny-embed")
    with (tmp_path / "demo.stderr").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "marketplace.cli", "demo", "--json", "--timeout", "300", "--run-dir",
             str(tmp_path / "run"), "--embed-model", str(embed), *flags],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "COLUMNS": "200", "WEBI_HOME": str(tmp_path), **(env or {})},
        )


def test_the_cheater_is_slashed_the_honest_paid_a_confidential_job_leaks_nothing_and_ctrl_c_stops_everything(
        tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--cheater", env={CANARY_ENV: CANARY})
    try:
        assert demo.stdout is not None
        line = demo.stdout.readline()  # the summary, printed before the demo serves the dashboard
        log = (tmp_path / "demo.stderr").read_text()
        assert line, log
        summary = json.loads(line)
        jobs = {(job["task"], job["confidentiality"]): job for job in summary["jobs"]}
        assert {key: job["state"] for key, job in jobs.items()} == {
            ("embed", "public"): "finalized", ("generate", "public"): "rejected", ("embed", "open"): "finalized"}
        generate, embed, sealed = jobs["generate", "public"], jobs["embed", "public"], jobs["embed", "open"]
        assert generate["verdict"] == "fail" and "logits behind" in generate["reason"]
        assert generate["verifier"] == "verifier" and generate["challenge"] is None
        assert embed["verdict"] == "pass" and embed["provider"] == "provider-embed"
        assert sealed["verdict"] == "pass" and sealed["verifier"] == "verifier", log  # audited, a verifier drawn
        confidential = summary["confidential"]
        assert {key: confidential[key] for key in ("job_id", "mode", "verdict", "state", "twin")} == {
            "job_id": sealed["job_id"], "mode": "open", "verdict": "pass", "state": "finalized",
            "twin": embed["job_id"]}
        assert confidential["confidential_extra_s"] == round(confidential["wall_s"] - confidential["twin_wall_s"], 1)
        assert confidential["wall_s"] > 0 and confidential["twin_wall_s"] > 0
        assert isinstance(confidential["submit_extra_s"], float)
        assert "confidential extra wall time" in log and "key released to its claimant" in log

        # Nothing of the confidential job in clear: not the canary input, not a decrypted output.
        run = tmp_path / "run"
        opened = open_as_requester(run, log, summary["dashboard"], sealed["job_id"], embed["job_id"])
        assert CANARY.encode() in opened.inputs, "the search below looks for what the job really holds"
        first = opened.outputs[0]  # the canary's embedding: the public twin's first input was another text
        assert first not in opened.twin_outputs
        public, _ = leaks({"the twin's output 0": opened.twin_outputs[0]}, run, [], summary["dashboard"],
                          embed["job_id"])
        assert any("/store/" in where for where in public), public  # the search does reach the store's blocks
        floats = first[first.index(b"[") + 1:].split(b",")[:3]
        secrets = {"the canary": CANARY.encode(), "output 0": first, "output 0's first floats": b",".join(floats)}
        found, searched = leaks(secrets, run, [tmp_path / "demo.stderr"], summary["dashboard"], sealed["job_id"])
        assert found == [], found
        assert searched["sqlite files"] >= 1 and searched["sqlite cells"] > 0 and searched["files"] > 10, searched

        # The group: every shard finalized, built by the two embed providers between them, merged whole.
        group = summary["group"]
        assert [(shard["num_tasks"], shard["price"], shard["state"], shard["verdict"], shard["verifier"])
                for shard in group["shards"]] == [(SHARD_TASKS, SHARD_PRICE, "finalized", "pass", "verifier")] * 4, log
        built = group["providers"]
        assert set(built) <= {"provider-embed", "provider-embed-2"} and sum(built.values()) == GROUP_SHARDS
        assert built == {key: sum(1 for shard in group["shards"] if shard["provider"] == key) for key in built}
        assert group["merged_tasks"] == CORPUS_TASKS and group["merged_final"] is True
        assert f"job group g{group['group_id']}: {CORPUS_TASKS} tasks in {GROUP_SHARDS} shards" in log
        assert not {shard["job_id"] for shard in group["shards"]} & {job["job_id"] for job in summary["jobs"]}
        first, second = built.get("provider-embed", 0), built.get("provider-embed-2", 0)

        assert summary["credits"] == {
            "provider-embed": {"provider payment": 2 * (JOB_PRICE_WEI - PROTOCOL_FEE) + first * SHARD_PAYMENT},
            **({"provider-embed-2": {"provider payment": second * SHARD_PAYMENT}} if second else {}),
            "treasury": {"protocol fee": 2 * PROTOCOL_FEE + GROUP_SHARDS * SHARD_PROTOCOL_FEE},
            "verifier": {"verifier fee": 2 * EMBED_FEE + GENERATE_FEE + GROUP_SHARDS * SHARD_FEE,
                         "reward": COLLATERAL_REWARD},
            "requester": {"refund": JOB_PRICE_WEI},
        }
        assert summary["slashed"] == {"provider-generate": COLLATERAL}
        assert summary["bonds"] == {"paid": {}, "refunded": {}}
        assert summary["burned"] == COLLATERAL - COLLATERAL_REWARD
        assert summary["net"] == {
            "requester": -2 * JOB_PRICE_WEI - 2 * EMBED_FEE - GENERATE_FEE - GROUP_PRICE_WEI - GROUP_SHARDS * SHARD_FEE,
            "provider-embed": 2 * (JOB_PRICE_WEI - PROTOCOL_FEE) + first * SHARD_PAYMENT,
            "provider-embed-2": second * SHARD_PAYMENT,
            "provider-generate": -COLLATERAL,
            "verifier": 2 * EMBED_FEE + GENERATE_FEE + GROUP_SHARDS * SHARD_FEE + COLLATERAL_REWARD,
            "treasury": 2 * PROTOCOL_FEE + GROUP_SHARDS * SHARD_PROTOCOL_FEE,
            "market": COLLATERAL - COLLATERAL_REWARD,
        }
        assert summary["conserved"] and summary["audit_clean"] and summary["cheater_rejected"]
        assert "lazy_verifier_slashed" not in summary
        assert "fast-forwarding the 1 h challenge window" in log and "books balance" in log
        assert "webi audit: clean" in log and "cheater slashed" in log
        for name in ("anvil", "node", "provider-embed", "provider-embed-2", "provider-generate", "verifier"):
            assert (tmp_path / "run" / f"{name}.log").stat().st_size > 0

        # Still serving: Ctrl-C stops every process it started.
        assert _answers(summary["dashboard"])
        assert summary["web_app"] == f"{summary['dashboard']}/app" and f"web app: {summary['web_app']}" in log
        assert "postJobWithPermit" in httpx.get(f"{summary['web_app'].removesuffix('/app')}/static/app.js").text
        children = _children(demo.pid)
        assert len(children) >= 6  # anvil, node, three providers, verifier
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=30, what="every child process to stop")
        assert not _answers(summary["dashboard"])
        assert demo.stdout.read() == "", "stdout holds the JSON document alone"
        logs = [*run.glob("*.log"), tmp_path / "demo.stderr"]  # what the daemons logged as they stopped, too
        assert not [path for path in logs if CANARY.encode() in path.read_bytes()]
    finally:
        _stop(demo)


@pytest.mark.slow
def test_a_lazy_pass_is_challenged_by_the_watchtower_and_overturned_by_the_panel(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--lazy-verifier", "--exit")
    try:
        stdout, _ = demo.communicate(timeout=600)
    finally:
        _stop(demo)
    log = (tmp_path / "demo.stderr").read_text()
    assert demo.returncode == 0, log
    summary: dict[str, Any] = json.loads(stdout)  # the whole of stdout: one JSON document
    jobs = {job["task"]: job for job in summary["jobs"]}
    assert len(jobs) == len(summary["jobs"]) and summary["confidential"] is None  # its verifier holds no key
    assert summary["group"] is None  # a lazy run shows the dispute; the group runs with an honest verifier
    generate, embed = jobs["generate"], jobs["embed"]
    assert generate["verifier"] == "verifier" and generate["verdict"] == "pass", log
    assert "lazy verifier" in generate["reason"]
    assert generate["state"] == "rejected"
    assert generate["challenge"] == {"challenger": "watchtower", "bond": PANEL_SIZE * GENERATE_FEE,
                                     "panel": ["panel-verifier"] * PANEL_SIZE, "outcome": "overturned",
                                     "verdict": "fail"}
    assert embed["verdict"] == "pass" and embed["state"] == "finalized" and embed["challenge"] is None

    bond = PANEL_SIZE * GENERATE_FEE
    lazy_slash = STAKE_WEBI * WEI * VERIFIER_SLASH_BPS // BPS  # half the lazy verifier's stake
    panel_pay = min(lazy_slash, bond)  # to the majority, here one member on every seat
    challenge_reward = (lazy_slash - panel_pay) * REWARD_BPS // BPS
    assert summary["credits"] == {
        "provider-embed": {"provider payment": JOB_PRICE_WEI - PROTOCOL_FEE},
        "treasury": {"protocol fee": PROTOCOL_FEE},
        "verifier": {"verifier fee": EMBED_FEE},  # the overturned audit's fee goes back to the requester
        "requester": {"refund": JOB_PRICE_WEI + GENERATE_FEE},
        "watchtower": {"reward": challenge_reward + COLLATERAL_REWARD, "bond refund": bond},
        "panel-verifier": {"panel fee": panel_pay},
    }
    assert summary["slashed"] == {"provider-generate": COLLATERAL, "verifier": lazy_slash}
    assert summary["bonds"] == {"paid": {"watchtower": bond}, "refunded": {"watchtower": bond}}
    burned = (lazy_slash - panel_pay - challenge_reward) + (COLLATERAL - COLLATERAL_REWARD)
    assert summary["burned"] == burned
    assert summary["net"] == {
        "requester": -JOB_PRICE_WEI - EMBED_FEE,
        "provider-embed": JOB_PRICE_WEI - PROTOCOL_FEE,
        "provider-generate": -COLLATERAL,
        "verifier": EMBED_FEE - lazy_slash,
        "watchtower": challenge_reward + COLLATERAL_REWARD,
        "panel-verifier": panel_pay,
        "treasury": PROTOCOL_FEE,
        "market": burned,
    }
    assert summary["cheater_rejected"] is True and summary["lazy_verifier_slashed"] is True
    assert summary["conserved"] and summary["audit_clean"]
    assert "LAZY verifier" in (tmp_path / "run" / "verifier.log").read_text()
    assert "challenged" in (tmp_path / "run" / "watchtower.log").read_text()
    assert "lazy verifier slashed" in log
    assert not _answers(summary["dashboard"]), "the node must be stopped when the demo ends"


def _stop(demo: subprocess.Popen[str]) -> None:
    if demo.poll() is None:
        demo.kill()
        demo.wait()
    if demo.stdout is not None:
        demo.stdout.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(value) for value in found.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
