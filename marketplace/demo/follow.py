"""Waiting in the demo: on a condition with a deadline, or on jobs, printing each state change.

Every wait also checks the supervisor, so a daemon that dies ends the demo at once with its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import httpx
from rich.console import Console

from marketplace.client import Client
from marketplace.demo.processes import Supervisor
from marketplace.errors import WebiError
from marketplace.protocol import JobState, Verdict


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait(supervisor: Supervisor, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        supervisor.check()
        if time.monotonic() > deadline:
            raise WebiError(f"timed out after {timeout:.0f} s waiting for {what}; see the logs in {supervisor.folder}")
        time.sleep(0.2)


def follow(console: Console, supervisor: Supervisor, client: Client, job_ids: Collection[int], timeout: float, *,
           until: Collection[JobState], seen: dict[int, JobState], waiting_for: str = "providers and the verifier",
           on_poll: Callable[[dict[int, JobState]], None] | None = None,
           reached: dict[tuple[int, JobState], float] | None = None) -> None:
    """Prints each job's state changes until every job in ``job_ids`` is in ``until``; ``seen`` holds the
    states printed (of every job followed so far). ``on_poll`` sees the states after each round (the demo
    releases an Open confidential job's key to its claimant there); ``reached`` gets the ``time.monotonic()``
    at which each job was first seen in each state."""
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {waiting_for} ...") as status:
        while True:
            supervisor.check()
            for job_id in job_ids:
                info = client.status(job_id)
                if seen.get(job_id) != info.state:
                    seen[job_id] = info.state
                    if reached is not None:
                        reached.setdefault((job_id, info.state), time.monotonic())
                    console.print(f"job {job_id}: {describe(info.state, info.verdict)}")
            if on_poll is not None:
                on_poll(seen)
            if all(seen.get(job_id) in until for job_id in job_ids):
                return
            states = ", ".join(f"{job_id} {state.name.lower()}" for job_id, state in seen.items())
            status.update(f"waiting for {waiting_for} ... ({states})")
            if time.monotonic() > deadline:
                raise WebiError(f"jobs not settled after {timeout:.0f} s ({states}); "
                                f"see the logs in {supervisor.folder}")
            time.sleep(0.5)


def describe(state: JobState, verdict: Verdict) -> str:
    if state == JobState.AUDITED:
        return f"audited: verdict {verdict.name.lower()}, final after the challenge window"
    if state == JobState.CHALLENGED:
        return "challenged: a panel of verifiers re-decides"
    return state.name.lower()


def duration(seconds: int) -> str:
    if seconds % 3_600 == 0:
        return f"{seconds // 3_600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
