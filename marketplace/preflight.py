"""The requester's checks before a job is posted: the job as the providers and the contract will see it.

``Client.post_job`` runs ``preflight`` before anything is uploaded or spent, so a job no provider will run
and a post the chain would revert cost nothing and say why, each reason on its own line
(``PreflightError``):

- the model bundle, through the very function the provider and the verifier run on it
  (``marketplace.model_bundle.check_bundle``): the listing and config.json (no pickle, no code, no
  ``auto_map``), the architecture for the task, the weights the task's model class needs, the positions
  the job may use. A local folder is read in place; a CID must be a folder the store has, and only its
  listing, config files and safetensors headers are read;
- the chain's bounds (``IJobMarket.postJob``): the price between its floor and cap, the sampled work's
  value, 1 to ``MAX_SAMPLE_TASKS`` audited tasks, the exec window, a claim deadline ahead, stakes that fit
  a uint96;
- the wallet: the WEBI the job escrows (price plus audit fee) and the ETH its gas can cost;
- the market: a registered provider that serves the task, stakes enough, is on the allowlist and whose
  published price floor the job's price per task meets (``provider_offers``). Providers that publish
  nothing count as willing; with none registered at all, the job can only wait, which is a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils.address import to_checksum_address

from marketplace.chain.deployment import Protocol
from marketplace.errors import CidError, ConfigError, ContentNotFoundError, JobSpecError, ModelError
from marketplace.funds import eth, gas_cost
from marketplace.job_limits import MAX_EXEC_WINDOW_S as MAX_EXEC_WINDOW_S
from marketplace.job_limits import MIN_CLAIM_WINDOW_S as MIN_CLAIM_WINDOW_S
from marketplace.job_limits import MIN_EXEC_WINDOW_S as MIN_EXEC_WINDOW_S
from marketplace.job_views import JobQuote, RequestRefusedError
from marketplace.jobspec import Parameters, TaskType
from marketplace.model_bundle import BundleFacts, check_bundle, folder_listing, store_listing
from marketplace.protocol import MAX_SAMPLE_TASKS, audit_fee
from marketplace.provider_offers import ProviderOffer, provider_offers
from marketplace.storage import ContentStore
from marketplace.storage.cid import Cid
from marketplace.units import webi

log = logging.getLogger(__name__)

MAX_UINT96 = 2**96 - 1
# The gas of ``postJobWithPermit`` is about 150,000 (README's gas table: postJob 89,499 plus the permit);
# with room, as ``funds`` rounds, so that "no ETH" is told from "enough" before anything is signed.
POST_GAS = 300_000


@dataclass(frozen=True)
class JobDraft:
    """A job as the requester asks for it, before anything is uploaded."""

    task: TaskType
    model: str  # a local folder or a CID
    num_tasks: int
    price_wei: int
    sample_tasks: int = 4
    claim_window_s: int = 3_600
    exec_window_s: int = 1_800
    parameters: Parameters = field(default_factory=Parameters)
    min_provider_stake: int = 0
    allowlist: tuple[str, ...] = ()
    max_protocol_fee_bps: int | None = None
    max_verifier_fee_bps: int | None = None
    min_collateral_bps: int | None = None


@dataclass
class Preflight:
    """What the checks found: ``problems`` stop the post; ``warnings`` do not."""

    draft: JobDraft
    quote: JobQuote | None = None
    model: BundleFacts | None = None
    offers: list[ProviderOffer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_problems(self) -> None:
        """``PreflightError`` naming every problem, if there is one."""
        if self.problems:
            raise PreflightError(self.problems)


class PreflightError(RequestRefusedError):
    """The job would not run or the post would revert: ``problems`` says each reason; nothing was spent."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refused before anything was uploaded or spent: " + "; ".join(problems))
        self.problems = problems


def preflight(protocol: Protocol, store: ContentStore, draft: JobDraft, requester: str, *,
              quote: JobQuote | None = None, check_providers: bool = True, escrow: int | None = None,
              post_gas: int = POST_GAS) -> Preflight:
    """Every check of the module docstring on ``draft`` posted by ``requester``; reads only (the chain's
    views and logs, the store's listings and small files). ``quote``: the terms in force (``Client.quote``),
    or None when quoting refused (its reason is then the caller's problem to report). A job group checks its
    largest shard as ``draft``, with the whole group's ``escrow`` and ``post_gas`` for the funds."""
    report = Preflight(draft, quote)
    report.problems += _chain_bounds(draft)
    model = _check_model(store, draft)
    if isinstance(model, str):
        report.problems.append(model)
    else:
        report.model = model
    if quote is not None:
        report.problems += _funds(protocol, draft, quote, requester, escrow, post_gas)
    if check_providers:
        report.offers = provider_offers(protocol.market, store)
        found = _providers(report.offers, draft)
        if found and not report.offers:
            report.warnings.append(found)
        elif found:
            report.problems.append(found)
    else:
        report.warnings.append("--no-provider-check: no registered provider's tasks and price floor were read")
    for problem in report.problems:
        log.info("job refused before posting: %s", problem)
    return report


def _chain_bounds(draft: JobDraft) -> list[str]:
    """What ``postJob`` would revert on that the price quote does not cover."""
    problems = []
    if not 1 <= draft.sample_tasks <= MAX_SAMPLE_TASKS:
        problems.append(f"--sample-tasks {draft.sample_tasks}: the audit re-executes 1 to {MAX_SAMPLE_TASKS} tasks "
                        "(the contract's MAX_SAMPLE_TASKS)")
    if not MIN_EXEC_WINDOW_S <= draft.exec_window_s <= MAX_EXEC_WINDOW_S:
        problems.append(f"--exec-window {draft.exec_window_s}: the contract takes {MIN_EXEC_WINDOW_S} to "
                        f"{MAX_EXEC_WINDOW_S} seconds (1 minute to 30 days)")
    if draft.claim_window_s < MIN_CLAIM_WINDOW_S:
        problems.append(f"--claim-window {draft.claim_window_s}: at least {MIN_CLAIM_WINDOW_S} seconds, so that "
                        "providers can see the job before it closes")
    if draft.price_wei > MAX_UINT96:
        problems.append(f"--price {webi(draft.price_wei)}: over the largest price the contract can hold "
                        f"({webi(MAX_UINT96)} WEBI)")
    if not 0 <= draft.min_provider_stake <= MAX_UINT96:
        problems.append(f"--min-provider-stake {webi(draft.min_provider_stake)}: 0 to {webi(MAX_UINT96)} WEBI")
    return problems


def _check_model(store: ContentStore, draft: JobDraft) -> BundleFacts | str:
    """The bundle's facts, or why no provider will run it."""
    path = Path(draft.model)
    try:
        if path.is_dir():
            listing = folder_listing(path)
        else:
            try:
                cid = Cid.parse(draft.model)
            except CidError:
                return f"--model {draft.model}: neither a model folder nor a CID"
            try:
                listing = store_listing(store, cid)
            except ContentNotFoundError:
                return (f"--model {cid}: the store does not have it: upload the model folder to this store "
                        "(`webi store add`) or give the folder itself")
        return check_bundle(listing, draft.task, draft.parameters)
    except (ModelError, JobSpecError, ConfigError) as error:
        return str(error)


def _funds(protocol: Protocol, draft: JobDraft, quote: JobQuote, requester: str, escrow: int | None,
           post_gas: int) -> list[str]:
    problems = []
    what = "the job group escrows" if escrow is not None else "the job escrows"
    if escrow is None:
        escrow = draft.price_wei + audit_fee(draft.price_wei, draft.num_tasks, quote.sample_tasks,
                                             quote.terms.verifier_fee_bps)
    balance = protocol.token.balance_of(requester)
    if balance < escrow:
        problems.append(f"{what} {webi(escrow)} WEBI (the price plus the audit fee) and {requester} holds "
                        f"{webi(balance)} WEBI")
    client = protocol.market.client
    ether = int(client.w3.eth.get_balance(to_checksum_address(requester)))
    needed = gas_cost(client, post_gas)
    if ether < needed:
        problems.append(f"{requester} has {eth(ether)} ETH, and posting needs about {eth(needed)} ETH for gas: "
                        "send it some ETH first (on a devnet, from a dev account: `webi devnet accounts`)")
    return problems


def _providers(offers: list[ProviderOffer], draft: JobDraft) -> str | None:
    """Why no registered provider would take the job, or None when one would."""
    task = draft.task.value
    if not offers:
        return "no provider is registered yet: the job waits for one until its claim window closes"
    members = {to_checksum_address(member) for member in draft.allowlist}
    reasons: dict[str, int] = {}
    floors = []
    for offer in offers:
        if offer.serves(task) is False:
            reasons["do not serve " + task] = reasons.get("do not serve " + task, 0) + 1
        elif members and to_checksum_address(offer.address) not in members:
            reasons["are not on the allowlist"] = reasons.get("are not on the allowlist", 0) + 1
        elif offer.stake.stake < draft.min_provider_stake:
            reasons["stake under --min-provider-stake"] = reasons.get("stake under --min-provider-stake", 0) + 1
        elif (floor := offer.price_floor_wei.get(task)) is not None and draft.price_wei < floor * draft.num_tasks:
            floors.append(floor)
        else:
            return None
    if floors:
        reasons[f"ask more per {task} task"] = len(floors)
    said = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
    line = f"no registered provider would take this {task} job ({len(offers)} registered: {said})"
    if floors:
        per_task = draft.price_wei // draft.num_tasks
        line += (f": it pays {webi(per_task)} WEBI a task and the lowest floor is {webi(min(floors))} WEBI: "
                 f"a --price of at least {webi(min(floors) * draft.num_tasks)} WEBI")
    return line + " (--no-provider-check posts it anyway)"
