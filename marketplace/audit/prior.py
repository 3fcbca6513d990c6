"""Where the fold starts when the audit does not start at the token's creation (``--from-block N``).

The events from block N on touch jobs, stakes and balances made before N. Folding them from
nothing is wrong (a no-show or overturned verdict slashes a share of a stake set before N) or
impossible (a job posted before N has no terms in the replay, and its settlement checks would
stop at its first event). So before folding, the auditor takes what those events touch as it
stood at the end of block N-1:

- every account the events name: its token balance, withdrawable credits and stakes (stake,
  locked, unbonding, duties, draw weight, secret commitment), from the contracts' views at block
  N-1, and the network parameters, treasury, owner, protocol fees and burned total there;
- every job whose events lie in the range but whose ``JobPosted`` does not: its own earlier
  events, found by its indexed job id (``topics[1]``) scanning back from N-1, folded on their own.
  The contract keeps only a hash of a job's terms, and its output CID, evidence and panel votes
  only in events, so the views alone cannot rebuild it. The credits, burns, slashes and penalties
  it had before N are then dropped: they lie outside the range on both sides of the settlement
  comparison (what the job's events from N on did, against what the rules say those events owe).
  The job's state so rebuilt is checked against ``getJob`` at N-1.

Reading views at N-1 needs historical state: an archive node, or anvil, which keeps it. Where the
node has none, the stakes cannot be known, nor the parameters and treasury where the range changes
them (else the latest ones held all along): the settlement checks that depend on them (a
verifier's slash, a penalty's reward, a protocol fee's recipient) are skipped and listed as such,
never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import is_checksum_address
from web3.exceptions import BadFunctionCallOutput, Web3RPCError

from marketplace.audit.checks import Checker
from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Protocol
from marketplace.errors import ChainError
from marketplace.history import ChainEvent, ChainState, EventDecoder, JobView, StakeView
from marketplace.history.state import params_dict
from marketplace.protocol import ZERO_ADDRESS, JobState, Params, Role

log = logging.getLogger(__name__)

# What a view at a block the node keeps no state for raises (the message varies by client).
_NO_STATE = (ChainError, Web3RPCError, ValueError, BadFunctionCallOutput)


@dataclass
class Start:
    """The fold's starting point: ``state`` as of the end of block ``block - 1``.

    ``known`` says whether the chain's state at that block could be read (stakes, balances and
    credits seeded), ``stakes_known`` whether the market's was known (read, or empty: the market
    was deployed in the range); ``carried`` lists the jobs posted before ``block`` that the range
    touches, ``skipped`` what could not be checked, in sentences the CLI prints.
    """

    block: int
    state: ChainState
    known: bool
    stakes_known: bool
    carried: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def start_at(
    protocol: Protocol,
    decoder: EventDecoder,
    block: int,
    events: list[ChainEvent],
    check: Checker,
    *,
    chunk: int = 2_000,
) -> Start:
    """The state the events of ``[block, …]`` (``events``) must be folded onto, read from the chain
    as it stood at the end of ``block - 1`` (module docstring)."""
    client = protocol.market.client
    at = block - 1
    market_live = at >= protocol.deployment.block  # before it, the market had no state at all
    token = protocol.token.contract.functions
    try:
        client.call(token.totalSupply(), at)
        known = True
    except _NO_STATE as error:
        log.warning("no state at block %s (%s): stakes and balances before it are unknown", at, error)
        known = False
    state = ChainState()
    # Before its deployment the market had no state: nothing of it is unknown then.
    start = Start(block, state, known, stakes_known=known or not market_live)
    if market_live and known:
        _seed_governance(client, protocol, state, at)
    elif market_live:
        # The latest parameters and treasury held since N only if no event in the range changed them;
        # else they are unknown until that event, and the penalties and fees before it go unchecked.
        views, changed = protocol.market.contract.functions, {event.name for event in events}
        if "ParamsUpdated" not in changed:
            state.params = params_dict(Params(*client.call(views.params())))
        if "TreasuryUpdated" not in changed:
            state.treasury = str(client.call(views.treasury()))
    posted = {event.job_id for event in events if event.name == "JobPosted"}
    touched = {event.job_id for event in events if event.contract == "market" and event.job_id is not None}
    earlier = sorted(job_id for job_id in touched - posted if job_id is not None)
    jobs = _jobs_before(client, decoder, protocol, earlier, at, chunk)
    for job_id in earlier:
        job = jobs.get(job_id)
        if job is None:
            start.skipped.append(f"job {job_id} began before block {block} and its JobPosted event was not "
                                 "found: its events were left out and its checks skipped")
            continue
        # What it earned, burned and was slashed before the start lies outside the range, on both sides.
        job.credits, job.slashes, job.penalties, job.burned = [], [], [], 0
        job.partial_since = block
        state.jobs[job_id] = job
        start.carried.append(job_id)
    if known:
        accounts = sorted(_addresses([event.args for event in events], state.jobs.values()))
        _seed_accounts(client, protocol, state, accounts, at, market_live)
        if market_live:
            views = protocol.market.contract.functions
            for job_id in start.carried:
                status, _ = client.call(views.getJob(job_id), at)
                check.equal("job state at the start block", f"job {job_id} at block {at}",
                            state.jobs[job_id].state.name, JobState(status[0]).name, job_id=job_id)
    return start


def _seed_governance(client: ChainClient, protocol: Protocol, state: ChainState, at: int) -> None:
    views = protocol.market.contract.functions
    state.params = params_dict(Params(*client.call(views.params(), at)))
    state.treasury = str(client.call(views.treasury(), at))
    state.owner = str(client.call(views.owner(), at))
    state.protocol_fees = int(client.call(views.protocolFees(), at))
    state.burned = int(client.call(views.burned(), at))


def _seed_accounts(
    client: ChainClient, protocol: Protocol, state: ChainState, accounts: list[str], at: int, market_live: bool
) -> None:
    token, views = protocol.token.contract.functions, protocol.market.contract.functions
    for account in accounts:
        balance = int(client.call(token.balanceOf(account), at))
        if balance:
            state.balances[account] = balance
        if not market_live:
            continue
        credits = int(client.call(views.credits(account), at))
        if credits:
            state.credits[account] = credits
        for role in (Role.PROVIDER, Role.VERIFIER):
            function = views.providerStake if role == Role.PROVIDER else views.verifierStake
            stake, locked, unlock_at, duties, unbonding = (int(value) for value in client.call(function(account), at))
            view = StakeView(account, role, stake, locked, unbonding, unlock_at, duties)
            if role == Role.VERIFIER:
                view.weight = int(client.call(views.verifierWeight(account), at))
                secret = bytes(client.call(views.secretOf(account), at))
                view.secret_hash = "0x" + secret.hex() if any(secret) else None
            if stake or locked or unbonding or duties or view.weight or view.secret_hash:
                state.stakes[(account, role)] = view


def _jobs_before(
    client: ChainClient, decoder: EventDecoder, protocol: Protocol, job_ids: list[int], at: int, chunk: int
) -> dict[int, JobView]:
    """Each job's view from its own events up to block ``at``, scanning back from ``at`` until every
    ``JobPosted`` is found (or the market's deployment is reached)."""
    if not job_ids:
        return {}
    topics = ["0x" + encode(["uint256"], [job_id]).hex() for job_id in job_ids]
    ids, wanted, end = set(job_ids), set(job_ids), at
    found: list[ChainEvent] = []
    while wanted and end >= protocol.deployment.block:
        begin = max(end - chunk + 1, protocol.deployment.block)
        logs = client.w3.eth.get_logs({
            "address": protocol.market.address,  # type: ignore[typeddict-item]
            "topics": [None, topics],
            "fromBlock": begin,
            "toBlock": end,
        })
        for entry in logs:
            event = decoder.decode(entry)
            if event is None or event.job_id not in ids:
                continue  # an address in topics[1] that happens to read as one of the ids
            found.append(event)
            if event.name == "JobPosted":
                wanted.discard(event.job_id)
        end = begin - 1
    scratch = ChainState()  # its stakes and balances are partial and thrown away: only the jobs are kept
    for event in sorted(found, key=lambda item: item.key):
        scratch.apply(event)
    return {job_id: job for job_id, job in scratch.jobs.items() if job_id in ids}


def _addresses(args: Iterable[Any], jobs: Iterable[JobView]) -> set[str]:
    """Every address in the events' arguments, and the parties of the jobs carried over."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        # web3 decodes addresses checksummed; a 20-byte ``bytes`` argument (a sealed revealed output, say)
        # arrives as lowercase hex, which fails the checksum unless it has no letter (odds 7e-9).
        if isinstance(value, str) and len(value) == 42 and value.startswith("0x") and is_checksum_address(value):
            found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)

    for item in args:
        collect(item)
    for job in jobs:
        collect([job.requester, job.provider, job.verifier])
        if job.challenge is not None:
            collect([job.challenge.challenger, *job.challenge.members])
    found.discard(ZERO_ADDRESS)
    return found
