"""A confidential job on the dashboard and the API: badged, its timeline in words, nothing of its content
shown (CIDs only), and the wrapped keys kept out of the node (their length only)."""

from __future__ import annotations

import httpx
from eth_account.signers.local import LocalAccount

from marketplace.job_timeline import JobTimeline
from marketplace.protocol import Role
from tests.conftest import Chain
from tests.marketplace.node.test_dashboard_pages import PAGE, text
from tests.support.history import confidential_job, given_back_job, settle_history
from tests.support.node import Node


def test_a_confidential_job_page_shows_the_badge_the_key_steps_and_no_content(
    chain: Chain, node: Node, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    public = settle_history(chain, requester, provider, verifier).finalized
    given_back = given_back_job(chain, requester, provider)
    job = confidential_job(chain, requester, provider, verifier)
    wrapped = ["0x" + bytes(event["args"]["wrappedKey"]).hex() for event in
               chain.market.contract.events.KeyReleased().get_logs(from_block=0, argument_filters={"jobId": job})]
    assert len(wrapped) == 2
    node.caught_up(chain.block_number())
    with httpx.Client(base_url=node.url, headers=PAGE) as client:
        page = client.get(f"/jobs/{job}")
        assert page.status_code == 200
        shown = text(page.text)
        assert f"Job #{job} finalized confidential (Open)" in shown
        assert f"the requester released the key to {provider.address}" in shown
        assert f"{provider.address} gave its claim back: its key did not arrive or did not open" in text(
            client.get(f"/jobs/{given_back}").text)
        assert "the provider revealed the outputs of tasks " in shown  # sealed: nothing went on-chain in clear
        assert "confidential" not in text(client.get(f"/jobs/{public}").text)
        listed = text(client.get("/jobs").text)
        assert listed.count("confidential (Open)") == 2  # this one and the one given back
        api = client.get(f"/v1/jobs/{job}", headers={"Accept": "application/json"}).text
        for blob in wrapped:
            assert blob not in page.text and blob[2:] not in page.text and blob[2:] not in api


def test_the_watched_timeline_tells_the_key_steps_without_the_wrapped_bytes(
    chain: Chain, requester: LocalAccount, provider: LocalAccount, verifier: LocalAccount
) -> None:
    """``webi job status --watch`` (``JobTimeline``) follows the same job in words, from the chain."""
    chain.register(provider, Role.PROVIDER)
    chain.register(verifier, Role.VERIFIER)
    given_back = given_back_job(chain, requester, provider)
    job = confidential_job(chain, requester, provider, verifier)
    events = JobTimeline(chain.market, job).poll()
    told = {event.name: event.text for event in events if event.name != "KeyReleased"}
    [back] = [event.text for event in JobTimeline(chain.market, given_back).poll() if event.name == "ClaimReleased"]
    assert back.startswith(f"{provider.address} gave its claim back: its key did not arrive")
    assert told["OutputsRevealed"].startswith("provider revealed the outputs of tasks ")
    released = [event for event in events if event.name == "KeyReleased"]
    assert [event.text for event in released] == [f"the requester released the key to {provider.address}",
                                                     f"the provider released the key to {verifier.address}"]
    assert all("wrappedKey" not in event.args and event.args["wrappedKeyLength"] > 100 for event in released)
