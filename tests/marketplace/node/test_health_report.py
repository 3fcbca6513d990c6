"""The judgement behind ``/healthz`` on a made-up clock: the lag trend, silence, the first poll, redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketplace.errors import ChainUnreachableError
from marketplace.indexer import IndexerProgress
from marketplace.indexer.health import ChainWatch, LagSample, lag_growing, one_line
from marketplace.node.health import Health, health_report, redacted

URL = "https://rpc.example.org/v3/secret-key"
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """Monotonic seconds that move only when told, and the wall clock that goes with them."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)


def watch(clock: Clock, window_s: float = 10.0) -> ChainWatch:
    return ChainWatch(window_s=window_s, clock=clock, wall=clock.wall)


def report(watcher: ChainWatch, clock: Clock, block: int = 10, head: int = 10) -> Health:
    progress = IndexerProgress(block, head, events=5, reorgs=0)
    return health_report(progress, watcher.snapshot(), clock(), stale_after_s=3.0, rpc_url=URL, chain_id=31337,
                         market="0xmarket")


def poll(watcher: ChainWatch, clock: Clock, lag: int, *, answer: bool = True, error: Exception | None = None,
         seconds: float = 1.0) -> None:
    watcher.begin()
    if answer:
        watcher.answered()
    clock.now += seconds
    watcher.ended(lag, error)


def test_the_lag_grows_only_against_the_window_start() -> None:
    samples = [LagSample(0.0, 1), LagSample(5.0, 1), LagSample(10.0, 2), LagSample(20.0, 2)]
    assert lag_growing(samples, now=20.0, window_s=12.0) is True  # against the sample at 5 s (lag 1)
    assert lag_growing(samples, now=20.0, window_s=5.0) is False  # against the sample at 10 s (lag 2)
    assert lag_growing(samples, now=20.0, window_s=100.0) is True  # younger than the window: the oldest
    assert lag_growing(samples[:1], now=20.0, window_s=12.0) is False
    assert lag_growing([LagSample(0.0, 9), LagSample(1.0, 3)], now=1.0, window_s=10.0) is False  # catching up


def test_a_watch_keeps_one_baseline_older_than_its_window() -> None:
    clock = Clock()
    watcher = watch(clock, window_s=10.0)
    for lag in range(30):
        poll(watcher, clock, lag)
    samples = watcher.snapshot().samples
    assert samples[0].at <= clock.now - 10.0 < samples[1].at and len(samples) == 11
    assert report(watcher, clock, block=10, head=39).indexer.lag_growing is True


def test_a_silent_chain_is_down_before_any_request_times_out() -> None:
    clock = Clock()
    watcher = watch(clock)
    poll(watcher, clock, 0)
    assert report(watcher, clock).status == "ok"
    watcher.begin()  # a request goes out and nothing comes back
    clock.now += 1.5
    assert report(watcher, clock).status == "ok"
    clock.now += 1.0
    health = report(watcher, clock)
    assert health.status == "down" and health.chain.reachable is False
    error = health.chain.error
    assert error is not None and error.startswith("the chain at https://rpc.example.org/… has not answered for 4 s")
    assert health.chain.seconds_since_success == 3.5
    assert health.chain.last_success == (EPOCH + timedelta(seconds=100)).isoformat(timespec="milliseconds")


def test_an_unreachable_chain_is_down_and_named_without_its_key() -> None:
    clock = Clock()
    watcher = watch(clock)
    poll(watcher, clock, 0)
    refused = ChainUnreachableError(f"cannot reach the chain at {URL}: connection refused\nmore detail")
    poll(watcher, clock, 0, answer=False, error=refused, seconds=0.1)
    health = report(watcher, clock)
    assert health.status == "down"
    assert health.chain.error == "cannot reach the chain at https://rpc.example.org/…: connection refused"
    assert len(watcher.snapshot().samples) == 1  # the failed poll saw no head: no lag sample
    poll(watcher, clock, 0)
    assert report(watcher, clock).status == "ok"


def test_a_refusal_while_the_head_answers_is_degraded_and_the_lag_grows() -> None:
    clock = Clock()
    watcher = watch(clock)
    poll(watcher, clock, 0)
    poll(watcher, clock, 3, error=ValueError("query returned more than 10000 results"))
    health = report(watcher, clock, block=10, head=13)
    assert health.status == "degraded" and health.chain.reachable is True
    assert health.indexer.error == "query returned more than 10000 results"
    assert health.indexer.lag_growing is True and health.lag == 3
    assert len(health.reasons) == 2


def test_before_the_first_poll_the_node_is_starting_then_down_if_the_chain_stays_silent() -> None:
    clock = Clock()
    watcher = watch(clock)
    starting = report(watcher, clock)
    assert starting.status == "degraded"
    assert starting.reasons == ["the indexer has not finished its first poll yet"]
    watcher.begin()
    clock.now += 5.0
    assert report(watcher, clock).status == "down"


def test_urls_and_errors_as_shown() -> None:
    assert redacted(URL) == "https://rpc.example.org/…"
    assert redacted("http://user:pass@127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert redacted("http://[::1]:8545/") == "http://[::1]:8545"
    assert one_line(ValueError("")) == "ValueError"
    assert len(one_line(ValueError("x" * 1_000))) == 300
