"""``webi audit --reexecute``: the verifier's re-executor on finalized jobs, through the auditor."""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount

from marketplace.audit import Auditor
from marketplace.chain.deployment import WEI
from marketplace.history import ChainState, JobView, fetch_events
from marketplace.indexer.indexer import decoder_for
from marketplace.protocol import Role, Verdict
from marketplace.results import MerkleTree, canonical, output_manifest
from provider.runtime import Runtime
from tests.conftest import Chain
from tests.support.jobs import TEXTS, Market
from verifier.reexecute import create_reexecutor


def finalized_job(chain: Chain, market: Market, requester: LocalAccount, provider: LocalAccount,
                  verifier: LocalAccount, outputs: list[bytes], spec_cid: str) -> int:
    """A job the (only) verifier passed and nobody challenged: final, whatever its outputs are."""
    job_id = market.post(requester, spec_cid=spec_cid)
    chain.market.claim_job(provider, job_id)
    chain.market.submit_result(provider, job_id, str(market.store.add_bytes(output_manifest(outputs)).cid),
                               MerkleTree(outputs).root)
    chain.verdict(verifier, job_id, Verdict.PASS)
    chain.settle(job_id)
    return job_id


def job_view(chain: Chain, job_id: int) -> JobView:
    state = ChainState()
    for event in fetch_events(chain.client, decoder_for(chain.protocol.deployment), 0, chain.block_number()):
        state.apply(event)
    return state.jobs[job_id]


def test_reexecution_passes_honest_work_and_flags_a_wrong_output(chain: Chain, market: Market, tmp_path: Path,
                                                                requester: LocalAccount, provider: LocalAccount,
                                                                verifier: LocalAccount) -> None:
    chain.register(provider, Role.PROVIDER, 1_000 * WEI)
    chain.register(verifier, Role.VERIFIER)
    spec_cid = market.upload_spec("embed", TEXTS)
    runtime = Runtime(market.store, tmp_path / "provider")
    honest = runtime.run(runtime.read_spec(spec_cid), TEXTS)
    good = finalized_job(chain, market, requester, provider, verifier, honest, spec_cid)
    reexecutor = create_reexecutor(market.store, tmp_path / "audit-cache")
    report = Auditor(chain.protocol, reexecutor=reexecutor).run(reexecute=4, seed=1)
    assert report.clean and len(report.reexecuted) >= 1
    assert {verdict.job_id for verdict in report.reexecuted} == {good}

    wrong = [*honest[:-1], canonical({"embedding": [1.0] + [0.0] * 31})]
    bad = finalized_job(chain, market, requester, provider, verifier, wrong, spec_cid)
    verdicts = reexecutor(job_view(chain, bad), [len(TEXTS) - 1, 0])
    assert [(verdict.index, verdict.passed) for verdict in sorted(verdicts, key=lambda v: v.index)] == [
        (0, True), (len(TEXTS) - 1, False)]
