"""Where an audit's sampled outputs come from: the provider's manifest in the store, or the chain.

From the store, every sampled output is proven against the committed root here; an output that
is not under it counts against the provider, as does a malformed manifest or output CID. A
manifest that cannot be fetched (not found, the store down or timing out, blocks that do not hash
to their CID) is ``OutputsUnavailableError``: not yet anyone's fault. The daemon retries for a grace
period and then demands a reveal (``demandReveal``); the provider's answer, ``revealOutputs``,
puts the sampled outputs in calldata, where the contract proves each against the root, and its
``OutputsRevealed`` event carries them. A confidential job's go sealed to the job key with their
proofs inside, which the contract cannot check: ``from_chain`` opens and proves them here.

A re-check after the verdict (a panel seat, a watchtower: ``verifier.recheck``) reads the same
two sources from chain data alone (``of_submission``): the manifest named by ``ResultSubmitted``,
or, where the store has no such manifest, the outputs revealed on-chain; with neither, the answer
is marked ``unavailable``: it rests on nothing compared, so it blames nobody (every task is
inconclusive, ``verifier.verdict``): a panel member retries and at last votes the first verdict
(``verifier.panels``), a watchtower never challenges on it. Erasing the outputs after a verdict must
not hand anyone a win.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketplace.chain.market import JobMarket
from marketplace.errors import (
    BlockMismatchError,
    ContentError,
    ContentNotFoundError,
    SealedError,
    StoreUnavailableError,
    WebiError,
)
from marketplace.results import MerkleTree, parse_output_manifest, verify_proof
from marketplace.sealed.envelope import open_revealed, open_sealed
from marketplace.sealed.keys import JobKey
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid

_MAX_MANIFEST = 1024**3


class OutputsUnavailableError(WebiError):
    """The sampled outputs could not be read (yet): retried, then demanded on-chain."""


class OutputsNotFoundError(OutputsUnavailableError):
    """The store answered that it has no such manifest (as opposed to being down or serving bad blocks)."""


@dataclass(frozen=True)
class SampledOutputs:
    """The sampled outputs that were proven (by index), and the refused ones with the reason."""

    source: str  # "store", "chain" (revealed after a demand) or "unavailable" (a re-check found neither)
    outputs: dict[int, bytes]
    refused: dict[int, str] = field(default_factory=dict)
    missing: str = ""  # with source "unavailable": why neither source had them

    @property
    def available(self) -> bool:
        return self.source != "unavailable"


def from_store(store: ContentStore, output_cid: str, root_hex: str, num_tasks: int,
               sampled: list[int], job_key: JobKey | None = None) -> SampledOutputs:
    """The sampled outputs of the manifest at ``output_cid``, each proven against the root.

    ``job_key``: a confidential job's manifest is an age file to it, opened here (the root commits to
    the plaintext outputs); one that does not open is the provider's doing, as a malformed one is.
    """
    try:
        manifest = store.read_bytes(Cid.parse(output_cid), limit=_MAX_MANIFEST)
        if job_key is not None:
            manifest = open_sealed(manifest, job_key, f"the output manifest {output_cid}")
        outputs = parse_output_manifest(manifest, num_tasks)
    except ContentNotFoundError as error:
        raise OutputsNotFoundError(f"outputs {output_cid} unavailable: {error}") from error
    except (StoreUnavailableError, BlockMismatchError) as error:
        raise OutputsUnavailableError(f"outputs {output_cid} unavailable: {error}") from error
    except (ContentError, SealedError) as error:  # a malformed or unopenable manifest: the provider's doing
        return SampledOutputs("store", {}, {index: f"output manifest unusable: {error}" for index in sampled})
    tree = MerkleTree(outputs)
    root = bytes.fromhex(root_hex.removeprefix("0x"))
    proven = {index: outputs[index] for index in sampled if verify_proof(root, index, outputs[index],
                                                                         tree.proof(index))}
    refused = {index: "output is not under the committed root" for index in sampled if index not in proven}
    return SampledOutputs("store", proven, refused)


def from_chain(market: JobMarket, job_id: int, sampled: list[int], job_key: JobKey | None = None,
               root_hex: str = "") -> SampledOutputs:
    """The outputs the provider revealed for this sample. A public job's were proven against the root
    by the contract. A confidential job's (``job_key`` given) are each an age file to the job key with
    the proof inside (``envelope.seal_revealed``), proven here against ``root_hex``; one that does not
    open or prove counts against the provider, as a wrong output in the store does."""
    events = market.contract.events.OutputsRevealed().get_logs(from_block=market.from_block,
                                                               argument_filters={"jobId": job_id})
    for event in reversed(events):  # the latest reveal: an earlier draw's sample differs
        indices = [int(index) for index in event["args"]["taskIndices"]]
        if sorted(indices) == sorted(sampled):
            revealed = {index: bytes(output) for index, output in zip(indices, event["args"]["outputs"], strict=True)}
            return SampledOutputs("chain", revealed) if job_key is None else _opened(revealed, job_key, root_hex)
    raise OutputsUnavailableError(f"job {job_id}: no OutputsRevealed event for tasks {sampled} yet")


def _opened(revealed: dict[int, bytes], job_key: JobKey, root_hex: str) -> SampledOutputs:
    """A confidential job's sealed reveal, each output opened and proven against the root."""
    root = bytes.fromhex(root_hex.removeprefix("0x"))
    proven: dict[int, bytes] = {}
    refused: dict[int, str] = {}
    for index, blob in revealed.items():
        try:
            output, proof = open_revealed(blob, job_key, f"the revealed output of task {index}")
        except SealedError as error:
            refused[index] = f"revealed output unusable: {error}"
            continue
        if verify_proof(root, index, output, proof):
            proven[index] = output
        else:
            refused[index] = "revealed output is not under the committed root"
    return SampledOutputs("chain", proven, refused)


@dataclass(frozen=True)
class Submission:
    """What the provider committed for a job (its latest ``ResultSubmitted`` event)."""

    output_cid: str
    result_root: str  # hex, no prefix


def submission_of(market: JobMarket, job_id: int) -> Submission:
    events = market.contract.events.ResultSubmitted().get_logs(from_block=market.from_block,
                                                               argument_filters={"jobId": job_id})
    if not events:
        raise ContentNotFoundError(f"job {job_id} has no submitted result")
    args = events[-1]["args"]
    return Submission(str(args["outputCid"]), bytes(args["resultRoot"]).hex())


def of_submission(market: JobMarket, store: ContentStore, job_id: int, submission: Submission, num_tasks: int,
                  sampled: list[int]) -> SampledOutputs:
    """The sampled outputs of an audited job from public data, for a re-check: the manifest in the store,
    else the outputs revealed on-chain, else none, with source ``unavailable`` (judged by nobody). Raises
    ``OutputsUnavailableError`` when our own store is down or serves bad blocks: retried, blamed on nobody."""
    try:
        return from_store(store, submission.output_cid, submission.result_root, num_tasks, sampled)
    except OutputsNotFoundError as missing:
        try:
            return from_chain(market, job_id, sampled)
        except OutputsUnavailableError:
            return SampledOutputs("unavailable", {}, missing=f"outputs not available: {missing}")
