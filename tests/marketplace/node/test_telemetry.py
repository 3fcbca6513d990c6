"""Signed heartbeats on a real node: what it stores and shows, and every heartbeat it must refuse (stored never).

The node runs on a clock the test sets, so freshness, the rate limit and online/offline take the same path every run.
"""

from __future__ import annotations

import json

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from marketplace.heartbeat import MAX_GPUS, SignedHeartbeat, sign_heartbeat
from marketplace.node.telemetry import HeartbeatError, Telemetry, TelemetryLimits
from marketplace.protocol import Role
from tests.conftest import Chain
from tests.support.telemetry import EPOCH, GPU, Clock, TelemetryNode


@pytest.fixture
def registered(telemetry_node: TelemetryNode, chain: Chain, provider: LocalAccount) -> TelemetryNode:
    chain.register(provider, Role.PROVIDER)
    telemetry_node.caught_up()
    return telemetry_node


def test_a_signed_heartbeat_shows_the_provider_online_until_it_falls_silent(
        registered: TelemetryNode, provider: LocalAccount) -> None:
    node = registered
    assert node.telemetry(provider.address)["online"] is False  # nothing heard yet
    stored = node.post(node.beat(provider))
    assert stored.status_code == 202, stored.text
    assert stored.json()["next_after_ms"] == int(EPOCH * 1000) + 2_000
    shown = node.telemetry(provider.address.lower())  # any spelling of the address
    assert shown["online"] is True and shown["last_seen"] == EPOCH
    assert shown["latest"]["gpus"] == [GPU.model_dump()]  # type: ignore[index]
    assert shown["latest"]["jobs_running"] == 1 and shown["latest"]["tasks_per_s"] == 61.5  # type: ignore[index]
    node.clock.now += 20.0
    assert node.telemetry(provider.address)["online"] is True  # 20 s: the limit, still online
    node.clock.now += 0.5
    assert node.telemetry(provider.address)["online"] is False
    assert node.post(node.beat(provider)).status_code == 202  # back
    assert node.telemetry(provider.address)["online"] is True
    assert len(node.telemetry(provider.address)["history"]) == 2  # type: ignore[arg-type]


def test_forged_replayed_stale_oversized_malformed_and_unregistered_heartbeats_are_refused_and_never_stored(
        registered: TelemetryNode, provider: LocalAccount, stranger: LocalAccount) -> None:
    node = registered
    honest = node.beat(provider)
    assert node.post(honest).status_code == 202
    node.clock.now += 5.0

    def refused(body: SignedHeartbeat | dict[str, object], status: int, words: str) -> httpx.Response:
        response = node.post(body)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
        return response

    # Forged: a stranger's signature over the provider's name, and the provider's signature over altered figures.
    impostor = node.beat(stranger)
    forged = SignedHeartbeat(heartbeat=impostor.heartbeat.model_copy(update={"provider": provider.address}),
                             signature=impostor.signature)
    refused(forged, 401, "signature is not")
    genuine = node.beat(provider)
    altered = genuine.model_dump()
    altered["heartbeat"]["gpus"][0]["utilization_pct"] = 0  # type: ignore[index]
    refused(altered, 401, "signature is not")
    refused({**genuine.model_dump(), "signature": "0x" + "00" * 65}, 401, "signature is not")
    # Unregistered: a valid signature by an address with no stake.
    refused(node.beat(stranger), 403, "not a registered provider")
    # Replayed: the stored heartbeat again, and an older one; stale: sent 31 s ago; from the future.
    refused(honest, 409, "replayed")
    refused(node.beat(provider, offset_s=-5.001), 409, "replayed")
    refused(node.beat(provider, offset_s=-31), 409, "stale")
    refused(node.beat(provider, offset_s=31), 422, "future")
    # Another deployment's.
    refused(node.beat(provider, chain_id=node.chain.client.chain_id + 1), 422, "this node serves chain")
    refused(node.beat(provider, market=stranger.address), 422, "this node serves chain")
    # Oversized, with and without a declared length; malformed; too many GPUs.
    padded = {**genuine.model_dump(), "padding": "x" * 9_000}
    refused(padded, 413, "at most 8,192 bytes")
    chunks = httpx.post(f"{node.url}/v1/heartbeats", content=iter([b"{" + b" " * 5_000, b" " * 5_000 + b"}"]))
    assert chunks.status_code == 413 and "transfer-encoding" in chunks.request.headers
    raw = httpx.post(f"{node.url}/v1/heartbeats", content=b"not json")
    assert raw.status_code == 422 and "not JSON" in raw.json()["detail"]
    refused({"heartbeat": {}, "signature": genuine.signature}, 422, "heartbeat.provider")
    refused({**genuine.model_dump(), "extra": 1}, 422, "extra")
    many = genuine.model_dump()
    many["heartbeat"]["gpus"] = [GPU.model_copy(update={"index": i}).model_dump() for i in range(MAX_GPUS + 1)]
    refused(many, 422, "heartbeat.gpus")
    twice = genuine.model_dump()
    twice["heartbeat"]["gpus"] = [GPU.model_dump(), GPU.model_dump()]
    refused(twice, 422, "each GPU index at most once")
    nested = httpx.post(f"{node.url}/v1/heartbeats", content=b"[" * 4_000 + b"]" * 4_000)
    assert nested.status_code == 422
    # None of them was stored: the history holds the honest heartbeat alone, and the genuine one still goes in.
    shown = node.telemetry(provider.address)
    assert len(shown["history"]) == 1 and shown["latest"]["sent_at_ms"] == honest.heartbeat.sent_at_ms  # type: ignore
    assert node.post(genuine).status_code == 202
    assert node.telemetry(stranger.address)["latest"] is None
    assert httpx.get(f"{node.url}/v1/providers/nobody/telemetry").status_code == 422


def test_the_rate_limit_spaces_a_providers_heartbeats_and_forgeries_do_not_count(
        registered: TelemetryNode, provider: LocalAccount, stranger: LocalAccount) -> None:
    node = registered
    assert node.post(node.beat(provider)).status_code == 202
    too_soon = node.post(node.beat(provider, offset_s=1.5))
    assert too_soon.status_code == 429 and too_soon.headers["retry-after"] == "1"
    assert "at most one every 2 s" in too_soon.json()["detail"]
    # A flood of forgeries under the provider's name never moves its limit: they are refused before it applies.
    for step in range(1, 6):
        impostor = node.beat(stranger, offset_s=2.0 + step / 10)
        forged = impostor.model_copy(update={"heartbeat": impostor.heartbeat.model_copy(
            update={"provider": provider.address})})
        assert node.post(forged).status_code == 401
    assert node.post(node.beat(provider, offset_s=2.0)).status_code == 202
    assert len(node.telemetry(provider.address)["history"]) == 1  # one point a 10 s step: the latest


def test_the_history_is_one_point_a_step_over_the_last_hour_and_a_silent_provider_is_forgotten(
        provider: LocalAccount, verifier: LocalAccount) -> None:
    clock = Clock()
    telemetry = Telemetry(31337, "0x" + "11" * 20, lambda address: address in {provider.address, verifier.address},
                          TelemetryLimits(), clock)

    def beat(account: LocalAccount) -> None:
        telemetry.accept(sign_heartbeat(account, chain_id=31337, market="0x" + "11" * 20,
                                        sent_at_ms=int(clock.now * 1000), gpus=[GPU]))

    for _ in range(400):  # 400 heartbeats 10 s apart: 66 minutes
        beat(provider)
        clock.now += 10.0
    history = telemetry.snapshot(provider.address)["history"]
    assert 355 <= len(history) <= 361  # the last hour only, one point a step
    assert all(clock.now - point["received_at"] <= 3_600 for point in history)
    with pytest.raises(HeartbeatError) as error:  # five more inside one step: one is kept, the rest limited
        beat(provider)
        clock.now += 1.0
        beat(provider)
    assert error.value.status == 429
    beat(verifier)
    assert telemetry.tracked() == 2
    clock.now += 3_601.0  # the provider falls silent for the whole window
    beat(verifier)
    assert telemetry.tracked() == 1 and telemetry.snapshot(provider.address)["latest"] is None
    assert json.dumps(telemetry.snapshot(verifier.address))  # JSON as the API sends it


def test_past_the_provider_bound_the_one_heard_from_least_recently_is_forgotten(
        provider: LocalAccount, verifier: LocalAccount, stranger: LocalAccount) -> None:
    clock = Clock()
    telemetry = Telemetry(31337, "0x" + "11" * 20, lambda _: True, TelemetryLimits(max_providers=2), clock)
    for account in (provider, verifier, provider, stranger):  # the verifier is heard from least recently
        telemetry.accept(sign_heartbeat(account, chain_id=31337, market="0x" + "11" * 20,
                                        sent_at_ms=int(clock.now * 1000)))
        clock.now += 3.0
    assert telemetry.tracked() == 2
    assert telemetry.snapshot(verifier.address)["latest"] is None
    assert telemetry.snapshot(provider.address)["online"] and telemetry.snapshot(stranger.address)["online"]
    before = telemetry.snapshot(provider.address)
    assert telemetry.snapshot(provider.address)["history"] is before["history"]  # one view, built once
    telemetry.accept(sign_heartbeat(provider, chain_id=31337, market="0x" + "11" * 20,
                                    sent_at_ms=int(clock.now * 1000)))
    assert telemetry.snapshot(provider.address)["view"] != before["view"]  # a new heartbeat moves the view
