"""Contract errors as sentences a person can act on.

A custom error says precisely what the contract refused, but in its own terms: state numbers,
wei, the name of a Solidity function. ``explain`` turns ``WrongState(jobId=3, have=5, want=1)``
in ``cancelJob`` into "job 3 is Cancelled; only an Open job can be cancelled": states by name,
amounts in WEBI, times as UTC dates, and what to do next. Every custom error of the deployed
ABIs has a sentence here (a test checks it), so a new error cannot ship unexplained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils.crypto import keccak

from marketplace.protocol import JobState, Role, Verdict
from marketplace.units import webi

# What the attempted call does, from its Solidity function name: (what it does, the job "can be ...").
_ACTIONS: dict[str, tuple[str, str]] = {
    "postJob": ("post the job", "posted"),
    "postJobWithPermit": ("post the job", "posted"),
    "postJobGroup": ("post the job group", "posted"),
    "cancelJob": ("cancel the job", "cancelled"),
    "claimJob": ("claim the job", "claimed"),
    "submitResult": ("submit a result", "given a result"),
    "reclaimExpired": ("reclaim the job", "reclaimed"),
    "finalize": ("finalize the job", "finalized"),
    "submitVerdict": ("submit a verdict", "given a verdict"),
    "commitSecret": ("commit a secret", "audited"),
    "lockSeed": ("lock the audit seed", "given an audit seed"),
    "redrawVerifier": ("redraw the verifier", "given a new verifier"),
    "demandReveal": ("demand a reveal", "asked to reveal outputs"),
    "revealOutputs": ("reveal outputs", "given revealed outputs"),
    "failUnrevealed": ("fail the job for unrevealed outputs", "failed for unrevealed outputs"),
    "challenge": ("challenge the verdict", "challenged"),
    "drawPanel": ("draw a panel", "given a panel"),
    "commitVote": ("commit a vote", "voted on"),
    "revealVote": ("reveal a vote", "voted on"),
    "resolveChallenge": ("resolve the challenge", "resolved"),
    "register": ("register", "registered"),
    "addStake": ("add stake", "staked"),
    "requestUnstake": ("request an unstake", "unstaked"),
    "withdrawStake": ("withdraw the stake", "withdrawn"),
    "withdraw": ("withdraw credits", "withdrawn"),
    "syncVerifier": ("sync the verifier", "synced"),
    "setTerms": ("change the terms", "changed"),
    "setParams": ("change the parameters", "changed"),
    "setTreasury": ("change the treasury", "changed"),
    "withdrawProtocolFees": ("withdraw protocol fees", "withdrawn"),
    "transferOwnership": ("transfer ownership", "transferred"),
    "transfer": ("transfer WEBI", "transferred"),
    "transferFrom": ("transfer WEBI", "transferred"),
    "approve": ("approve a spender", "approved"),
    "permit": ("use the permit", "permitted"),
}

_PANICS = {0x01: "an assertion failed", 0x11: "an arithmetic overflow or underflow", 0x12: "a division by zero",
           0x21: "a value out of an enum's range", 0x32: "an array index out of bounds",
           0x41: "too much memory", 0x51: "a call to an uninitialized function"}

_ROLES = {b"\x00" * 32: "DEFAULT_ADMIN_ROLE"} | {
    keccak(text=name): name for name in ("PROPOSER_ROLE", "EXECUTOR_ROLE", "CANCELLER_ROLE")}

_CONFIDENTIALITY = {0: "public", 1: "Directed (its key came with the spec)", 2: "Open"}


@dataclass(frozen=True)
class _Error:
    """One decoded error and the call it came from, with helpers that render its arguments."""

    args: Mapping[str, Any]
    function: str | None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def job(self) -> str:
        return f"job {self['jobId']}"

    def wei(self, key: str) -> str:
        return f"{webi(int(self[key]))} WEBI"

    def when(self, key: str) -> str:
        seconds = int(self[key])
        try:
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):  # no date can show it: the chain's own number
            return f"time {seconds}"

    def to_act(self) -> str:
        """'cancel the job' for cancelJob; 'do this' when the function is unknown."""
        return _ACTIONS.get(self.function or "", ("do this", ""))[0]

    def can_be(self) -> str:
        participle = _ACTIONS.get(self.function or "", ("", ""))[1]
        return f"can be {participle}" if participle else f"can go through {self.function or 'this call'}"

    def role(self) -> str:
        return _enum_name(Role, self["role"]).lower()

    def text(self, key: str) -> str:
        """A bytes32 that holds a short name ("protocolFeeBps")."""
        value = self[key]
        return value.rstrip(b"\x00").decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _enum_name(kind: type[JobState] | type[Role] | type[Verdict], value: Any) -> str:
    try:
        return kind(int(value)).name.capitalize()
    except ValueError:
        return f"{kind.__name__} {value}"


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _wrong_state(e: _Error) -> str:
    have, want = _enum_name(JobState, e["have"]), _enum_name(JobState, e["want"])
    return f"{e.job()} is {have}; only {_a(want)} job {e.can_be()}"


def _insufficient_stake(e: _Error) -> str:
    who, have, need = e["account"], e.wei("have"), e.wei("need")
    if e.function == "requestUnstake":
        return (f"{who} would be left with {have} where {need} is needed: unstake at most its free stake "
                "(not locked by jobs), and leave at least the minimum stake or unstake everything")
    if e.function == "claimJob":
        return (f"{who} has {have} of free stake; claiming this job needs {need}: "
                f"stake at least {webi(int(e['need']) - int(e['have']))} WEBI more")
    return f"{who} offers a stake of {have}; {e.to_act()} needs at least {need}: stake at least {need}"


_SENTENCES: dict[str, Callable[[_Error], str]] = {
    # ───────────────────────────── JobMarket, Disputes (IJobMarketTypes)
    "ZeroAmount": lambda e: "the amount is zero: give a positive amount",
    "AlreadyRegistered": lambda e: f"{e['account']} is already registered as a {e.role()}: add stake instead",
    "NotRegistered": lambda e: f"{e['account']} is not registered as a {e.role()}: register (with the minimum stake) "
                               "first",
    "InsufficientStake": _insufficient_stake,
    "CooldownActive": lambda e: f"{e['account']}'s unstake is still cooling down: wait until {e.when('unlockAt')}",
    "DutiesOpen": lambda e: f"{e['account']} still serves on {e['duties']} open audit(s) or panel(s): wait until they "
                            "close, then withdraw",
    "NothingToWithdraw": lambda e: f"{e['account']} has nothing to withdraw" + (
        ": request an unstake first and wait for its cooldown" if e.function == "withdrawStake" else ""),
    "JobNotFound": lambda e: f"there is no {e.job()}: check the job id",
    "WrongState": _wrong_state,
    "NotRequester": lambda e: f"{e['caller']} did not post {e.job()}: only its requester can {e.to_act()}",
    "NotProvider": lambda e: f"{e['caller']} is not the provider of {e.job()}: only the provider that claimed it can "
                             f"{e.to_act()}",
    "InvalidNumTasks": lambda e: f"a job needs at least one task, this one has {e['numTasks']}",
    "InvalidPrice": lambda e: f"the price {e.wei('price')} is below the minimum of {e.wei('min')} for this many "
                              f"tasks: offer at least {e.wei('min')}",
    "PriceAboveMaximum": lambda e: f"the price {e.wei('price')} is above the market's maximum of {e.wei('max')} a "
                                   f"job: offer at most {e.wei('max')}, or split the job",
    "SampleValueAboveMaximum": lambda e: f"the sampled tasks are worth {e.wei('value')}, above the {e.wei('max')} an "
                                         "audit may judge: sample fewer tasks or lower the price",
    "NotSyncPhase": lambda e: f"block {e['blockNumber']} is outside a verifier sync phase: wait until block "
                              f"{e['nextSync']}",
    "InvalidClaimBy": lambda e: f"the claim deadline {e.when('claimBy')} is not after the chain's time "
                                f"{e.when('now_')}: give a later one",
    "InvalidExecWindow": lambda e: f"an execution window of {e['execWindow']} s is outside {e['min']} to {e['max']} s: "
                                   "pick one in that range",
    "InvalidKeyWindow": lambda e: (
        f"a key window of {e['keyWindow']} s is outside {e['min']} to {e['max']} s: an Open confidential job "
        "needs one of at least a minute, at most half its exec window and a day" if int(e['max']) > 0 else
        f"a key window of {e['keyWindow']} s on a job that is not Open confidential: give 0"),
    "InvalidGroupSize": lambda e: f"a job group of {e['shards']} shards: post 1 to {e['max']} shards a transaction "
                                  "(split a bigger job into several groups)",
    "NotGroupRequester": lambda e: f"{e['caller']} did not post group {e['groupId']}: only its requester re-posts "
                                   "shards into it",
    "DirectedWithoutAllowlist": lambda e: "a Directed confidential job wraps its key to the providers it names: "
                                          "give it an allowlist (or post it Open)",
    "NotConfidential": lambda e: f"{e.job()} is {_CONFIDENTIALITY.get(int(e['confidentiality']), 'not Open')}: "
                                 f"only an Open confidential job can {e.to_act()}" if e.function == "releaseClaim"
                                 else f"{e.job()} is public: it has no key to release",
    "NotKeyHolder": lambda e: f"{e['caller']} is neither the requester nor the provider of {e.job()}: only they hold "
                              "its key",
    "InvalidWrappedKey": lambda e: f"a wrapped key of {e['length']} bytes is outside 1 to {e['max']} bytes: wrap one "
                                   "job key to one recipient",
    "ClaimNotReleasable": lambda e: f"{e.job()}'s key arrived and its key window ended at {e.when('until')}: the "
                                    "claim can no longer be given back; submit the result or lose the collateral",
    "ClaimGivenBack": lambda e: f"{e['provider']} gave {e.job()}'s claim back once: it may not claim that job again "
                                "(another provider may)",
    "InvalidSampleTasks": lambda e: f"{e['sampleTasks']} sampled tasks is outside 1 to {e['max']}: sample within it",
    "TermsOutOfBounds": lambda e: f"the market's {e.text('name')} is {e['have']} bps, beyond your bound of "
                                  f"{e['bound']} bps: the terms changed; read them again and post with a matching "
                                  "bound",
    "ClaimWindowClosed": lambda e: f"{e.job()} could be claimed only until {e.when('claimBy')}: it has expired",
    "NotAllowlisted": lambda e: f"{e['provider']} is not on {e.job()}'s allowlist: only listed providers can claim it",
    "SubmitDeadlinePassed": lambda e: f"{e.job()}'s result was due by {e.when('deadline')}: too late to submit",
    "SubmitDeadlineNotReached": lambda e: f"{e.job()}'s provider has until {e.when('deadline')} to submit: wait until "
                                          f"then to {e.to_act()}",
    "SeedNotReady": lambda e: f"{e.job()}'s audit seed comes from block {e['seedBlock']}: wait until after that block",
    "AlreadyDrawn": lambda e: f"{e.job()} already has {e['verifier']} drawn: nothing to draw",
    "NotDrawn": lambda e: f"no verifier is drawn for {e.job()} yet: lock its seed first",
    "NoEligibleVerifier": lambda e: f"no verifier is eligible to audit {e.job()}: a verifier must register and sync, "
                                    "then try again",
    "NotAssignedVerifier": lambda e: f"{e['caller']} is not {e.job()}'s verifier ({e['assigned']} is): only it can "
                                     f"{e.to_act()}",
    "NoSecret": lambda e: f"{e['verifier']} has committed no secret: commit one first",
    "WrongSecret": lambda e: f"the secret {e['verifier']} gave for {e.job()} does not match its commitment: use the "
                             "secret it committed",
    "InvalidVerdict": lambda e: f"{_enum_name(Verdict, e['verdict'])} is not a verdict for {e.job()}: give Pass, Fail "
                                "or Inconclusive",
    "DeadlinePassed": lambda e: f"the deadline for {e.job()} passed at {e.when('deadline')}: too late to {e.to_act()}",
    "DeadlineNotReached": lambda e: f"{e.job()}'s window runs until {e.when('deadline')}: wait until then to "
                                    f"{e.to_act()}",
    "RevealAlreadyDemanded": lambda e: f"a reveal of {e.job()}'s outputs was already demanded",
    "NoRevealDemand": lambda e: f"no reveal was demanded for {e.job()}: nothing to {e.to_act()}",
    "WrongOutputCount": lambda e: f"{e['have']} outputs given for {e.job()} where {e['want']} were demanded: reveal "
                                  "exactly the demanded tasks",
    "InvalidOutputProof": lambda e: f"the proof for task {e['taskIndex']} of {e.job()} does not match its committed "
                                    "outputs root: reveal the outputs that were submitted",
    "SampleNotRevealed": lambda e: f"{e.job()}'s demanded outputs are not revealed: wait for the reveal or its "
                                   "deadline",
    "NotEntitledToChallenge": lambda e: f"{e['caller']} may not challenge {e.job()}'s verdict: only the party it went "
                                        "against can",
    "NotPanelMember": lambda e: f"{e['caller']} has no seat on {e.job()}'s panel: only its members can {e.to_act()}",
    "PanelNotDrawn": lambda e: f"no panel is drawn for {e.job()}: draw one first",
    "AlreadyVoted": lambda e: f"{e['member']} has already voted on {e.job()}",
    "VoteMismatch": lambda e: f"the vote {e['member']} gave for {e.job()} does not match its commitment (or is empty): "
                              "reveal the vote and salt it committed",
    "ParamOutOfBounds": lambda e: f"{e.text('name')} = {e['value']} is outside the contract's bounds "
                                  f"{e['min']} to {e['max']}: pick a value within them",
    "ZeroAddress": lambda e: "an address given is the zero address: give a real one",
    "TermsMismatch": lambda e: f"the terms given for {e.job()} are not the ones it was posted with: read them again "
                               "from the chain",
    "BlockNumberTooLarge": lambda e: f"block number {e['blockNumber']} does not fit in 32 bits",
    "DirectCall": lambda e: "the dispute module was called directly: call it through JobMarket",
    # ───────────────────────────── OpenZeppelin (token, permit, ownership, timelock)
    "ECDSAInvalidSignature": lambda e: "the signature is invalid: sign again",
    "ECDSAInvalidSignatureLength": lambda e: f"the signature is {e['length']} bytes long, not 65: sign again",
    "ECDSAInvalidSignatureS": lambda e: "the signature's s value is out of range: sign again",
    "ERC20InsufficientAllowance": lambda e: f"{e['spender']} may spend {e.wei('allowance')} but needs {e.wei('needed')}"
                                            f": approve at least {e.wei('needed')}",
    "ERC20InsufficientBalance": lambda e: f"{e['sender']} holds {e.wei('balance')}; this needs {e.wei('needed')}: get "
                                          f"{webi(int(e['needed']) - int(e['balance']))} WEBI more",
    "ERC20InvalidApprover": lambda e: f"{e['approver']} cannot approve: give a real address",
    "ERC20InvalidReceiver": lambda e: f"{e['receiver']} cannot receive WEBI: give a real address",
    "ERC20InvalidSender": lambda e: f"{e['sender']} cannot send WEBI: give a real address",
    "ERC20InvalidSpender": lambda e: f"{e['spender']} cannot be a spender: give a real address",
    "ERC2612ExpiredSignature": lambda e: f"the permit expired at {e.when('deadline')}: sign a new one",
    "ERC2612InvalidSigner": lambda e: f"the permit is signed by {e['signer']}, not by the owner {e['owner']}: sign it "
                                      "with the owner's key",
    "InvalidAccountNonce": lambda e: f"the permit's nonce is stale; {e['account']}'s nonce is {e['currentNonce']}: "
                                     "sign a new one",
    "InvalidShortString": lambda e: "a string is not a valid short string",
    "StringTooLong": lambda e: f"the string {e['str']!r} is too long",
    "OwnableInvalidOwner": lambda e: f"{e['owner']} cannot be the owner: give a real address",
    "OwnableUnauthorizedAccount": lambda e: f"{e['account']} is not the owner: only the owner (the governance "
                                           f"timelock, if any) can {e.to_act()}",
    "ReentrancyGuardReentrantCall": lambda e: "a reentrant call was refused",
    "SafeCastOverflowedUintDowncast": lambda e: f"{e['value']} does not fit in {e['bits']} bits: use a smaller value",
    "SafeERC20FailedOperation": lambda e: f"a transfer of the token at {e['token']} failed",
    "AccessControlBadConfirmation": lambda e: "a role can only be renounced by its holder, who must confirm it",
    "AccessControlUnauthorizedAccount": lambda e: f"{e['account']} lacks {_role_name(e['neededRole'])}: only a holder "
                                                  f"can {e.to_act()}",
    "FailedCall": lambda e: "a call the timelock made failed: check the scheduled operation",
    "TimelockInsufficientDelay": lambda e: f"a delay of {e['delay']} s is below the timelock's minimum of "
                                           f"{e['minDelay']} s: schedule with at least that",
    "TimelockInvalidOperationLength": lambda e: f"{e['targets']} targets, {e['payloads']} payloads and {e['values']} "
                                                "values: give as many of each",
    "TimelockUnauthorizedCaller": lambda e: f"{e['caller']} may not call the timelock's own functions",
    "TimelockUnexecutedPredecessor": lambda e: f"the operation's predecessor 0x{bytes(e['predecessorId']).hex()} has "
                                               "not run: execute it first",
    "TimelockUnexpectedOperationState": lambda e: f"operation 0x{bytes(e['operationId']).hex()} is not ready for this: "
                                                  "schedule it first, or wait until its delay has passed",
    # ───────────────────────────── what the decoder gives for anything else
    "Error": lambda e: f"the contract refused: {e['message']}",
    "Panic": lambda e: f"the contract hit {_PANICS.get(int(e['code']), 'a panic')} (code {int(e['code']):#x})",
    "UnknownError": lambda e: "the contract reverted with an error it does not declare",
}


def _role_name(role: Any) -> str:
    raw = bytes(role) if isinstance(role, bytes | bytearray) else b""
    return _ROLES.get(raw, "0x" + raw.hex() if raw else str(role))


def explain(name: str, args: Mapping[str, Any], function: str | None = None) -> str | None:
    """The sentence for error ``name`` with ``args`` raised by ``function``; None for an error we do not know.

    A sentence never fails: arguments that do not fit (a hand-made error with missing keys) give None,
    and the caller keeps the raw form.
    """
    sentence = _SENTENCES.get(name)
    if sentence is None:
        return None
    try:
        return sentence(_Error(args, function))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def explained_names() -> frozenset[str]:
    """Every error name that has a sentence (a test checks the ABIs against it)."""
    return frozenset(_SENTENCES)
