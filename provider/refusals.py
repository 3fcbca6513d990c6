"""Why a posted job is not for this provider: first from the chain alone, then from its spec.

The on-chain checks come first and cost no fetch, so a job the provider may not or will not claim
(a spammer's dust, a job gated to others, terms it cannot meet) never makes it read an untrusted
store. They mirror ``claimJob``'s own checks, so that a claim the contract would refuse is not sent:
the claim window, registration, the stake the network and the requester ask for, the collateral the
claim locks, and the allowlist when its root alone decides it (no list, or a list of one: ours).
Only a longer allowlist needs the spec, which names its members.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.jobspec import JobSpec
from marketplace.protocol import ZERO_HASH, Allowlist, JobTerms, Params, Stake, allowlist_leaf
from provider.config import ProviderConfig


@dataclass(frozen=True)
class Refusal:
    """Why not; ``final`` is false when it may change (collateral that our other jobs still lock)."""

    reason: str
    final: bool = True


def refusal_on_chain(terms: JobTerms, *, now: int, stake: Stake, params: Params,
                     config: ProviderConfig) -> Refusal | None:
    """The job's terms against our stake and prices, with nothing fetched from a store."""
    if terms.claim_by < now:
        return Refusal(f"the claim window closed at {terms.claim_by}")
    floors = [config.floor_wei(task) for task in config.tasks]
    per_task = terms.price // terms.num_tasks
    if floors and per_task < min(floors):
        return Refusal(f"{per_task} wei per task is under this provider's floor of {min(floors)}")
    if stake.stake == 0:
        return Refusal("this account is not registered as a provider (no provider stake)")
    if terms.min_provider_stake > stake.stake:
        return Refusal(f"the requester asks for a provider stake of {terms.min_provider_stake} wei; ours is "
                       f"{stake.stake}")
    if params.min_provider_stake > stake.stake:
        return Refusal(f"the network asks for a provider stake of {params.min_provider_stake} wei; ours is "
                       f"{stake.stake}")
    if terms.collateral > stake.stake:
        return Refusal(f"the claim locks {terms.collateral} wei of collateral, more than our whole stake of "
                       f"{stake.stake} wei")
    if terms.collateral > stake.free:
        return Refusal(f"the claim locks {terms.collateral} wei of collateral; {stake.free} wei is free while "
                       "our other jobs lock the rest", final=False)
    return None


def allowlist_open_to(terms: JobTerms, address: str) -> bool:
    """Whether the root alone lets ``address`` claim: no allowlist, or a list of one that is ours."""
    return terms.allowlist_root in (ZERO_HASH, allowlist_leaf(address))


def allowlist_proof(terms: JobTerms, spec: JobSpec, address: str) -> tuple[list[bytes], str | None]:
    """Our proof for the job's allowlist (empty without one), or why we are not in it.

    The chain holds only the list's Merkle root; the spec names its members. A list of one is
    its own root, so that case needs no spec at all.
    """
    if allowlist_open_to(terms, address):
        return [], None
    if not spec.allowlist:
        return [], "the job has an allowlist, and its spec does not name the members"
    allowlist = Allowlist(spec.allowlist)
    if allowlist.root != terms.allowlist_root:
        return [], "the spec's allowlist does not match the job's allowlist root"
    try:
        return allowlist.proof(address), None
    except KeyError:
        return [], "this provider is not in the job's allowlist"


def refusal_for_spec(spec: JobSpec, terms: JobTerms, config: ProviderConfig) -> str | None:
    """The spec against what this provider serves and the job's posted terms."""
    if spec.task not in config.tasks:
        return f"task type {spec.task.value} is not served here"
    if spec.num_tasks != terms.num_tasks:
        return f"the spec says {spec.num_tasks} tasks but the job was posted for {terms.num_tasks}"
    floor = config.floor_wei(spec.task)
    if terms.price // terms.num_tasks < floor:
        return f"{terms.price // terms.num_tasks} wei per task is under this provider's floor of {floor}"
    return None


def refusal_for_confidentiality(spec: JobSpec, terms: JobTerms) -> str | None:
    """A spec that does not fit the job's on-chain confidentiality: sealed content needs an envelope, and
    an envelope on a public job would leave its content unreadable to the verifier's public checks."""
    if terms.confidential and spec.confidential is None:
        return "the job is confidential on-chain, but its spec has no confidential section"
    if not terms.confidential and spec.confidential is not None:
        return "the spec is sealed, but the job was posted as public"
    return None
