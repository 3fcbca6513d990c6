"""One job's history as it happens: every event the market emits about it, once each, in words.

``webi job status --watch`` and ``Client.wait(on_event=...)`` print what moves a job: its claim,
the submission, the verifier draw, reveal demands and reveals, the verdict, a challenge, the panel
and its votes (how many seats have committed and revealed), the resolution and the settlement.
The chain's event log is the record: ``JobTimeline`` scans the market's logs whose first indexed
topic is the job id from a cursor that only moves forward, so a poll returns only what is new, and
it stamps each event with its block and that block's timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic

from marketplace.chain.market import JobMarket
from marketplace.protocol import Verdict
from marketplace.units import webi

_CHUNK = 2_000  # blocks per eth_getLogs: public endpoints cap the range


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to a job, where (block, transaction) and when (the block's timestamp)."""

    job_id: int
    block: int
    timestamp: int
    name: str
    text: str
    tx_hash: str
    args: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def when(self) -> str:
        """The block's time in UTC, ISO 8601."""
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def line(self) -> str:
        return f"block {self.block} {self.when}  job {self.job_id}: {self.text}"

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "block": self.block, "timestamp": self.timestamp, "event": self.name,
                "text": self.text, "tx_hash": self.tx_hash}


class JobTimeline:
    """Follows one job's events; ``poll`` returns those mined since the last poll, described.

    It counts the panel's seats as the votes come in: a member drawn twice holds two seats and its one
    commitment (and its one reveal) fills both, as in the contract.
    """

    def __init__(self, market: JobMarket, job_id: int, from_block: int | None = None) -> None:
        self.market = market
        self.job_id = job_id
        self._next_block = market.from_block if from_block is None else from_block
        self._events = {event_abi_to_log_topic(cast(ABIEvent, abi)): market.contract.events[str(abi.get("name"))]()
                        for abi in market.contract.abi if abi.get("type") == "event"}
        self._topic = "0x" + job_id.to_bytes(32, "big").hex()
        self._seats: list[str] = []
        self._committed = 0
        self._revealed = 0
        self._requester = ""  # from JobPosted: who released a confidential job's key
        self._describe: dict[str, Callable[[dict[str, Any]], str]] = {
            "JobPosted": self._posted,
            "JobCancelled": lambda a: "cancelled; the escrow is credited back to the requester",
            "JobClaimed": lambda a: f"claimed by {a['provider']} ({webi(a['collateral'])} WEBI collateral locked, "
                                    f"result due by {_time(a['deadline'])})",
            "ClaimExpired": lambda a: f"the claim of {a['provider']} expired: {webi(a['slashed'])} WEBI of its "
                                      "collateral slashed, the job is open again",
            "ResultSubmitted": lambda a: f"result submitted by {a['provider']}: outputs {a['outputCid']}, root "
                                         f"{a['resultRoot']}",
            "KeyReleased": self._key_released,
            "ClaimReleased": lambda a: f"{a['provider']} gave its claim back: its key did not arrive or did not open "
                                       f"({webi(a['collateral'])} WEBI collateral unlocked, unslashed); the job is "
                                       "open again",
            "SeedRearmed": lambda a: f"draw seed re-armed to block {a['seedBlock']}",
            "VerifierDrawn": lambda a: f"verifier {a['verifier']} drawn, verdict due by {_time(a['deadline'])}",
            "VerifierMissed": lambda a: f"verifier {a['verifier']} missed its deadline: penalized, a new draw is "
                                        f"armed at block {a['seedBlock']}",
            "RevealDemanded": lambda a: f"verifier {a['verifier']} demands the sampled outputs on-chain by "
                                        f"{_time(a['revealBy'])}",
            "OutputsRevealed": lambda a: "provider revealed the outputs of tasks "
                                         f"{', '.join(str(i) for i in a['taskIndices'])} on-chain",
            "VerdictSubmitted": lambda a: f"verdict {_verdict(a['verdict'])} by {a['verifier']} "
                                          f"(evidence {a['evidenceCid']})",
            "Challenged": lambda a: f"verdict challenged by {a['challenger']} with a {webi(a['bond'])} WEBI bond; "
                                    f"the panel is drawn from block {a['seedBlock']}",
            "PanelDrawn": self._panel,
            "VoteCommitted": self._commit,
            "VoteRevealed": self._reveal,
            "ChallengeResolved": lambda a: f"challenge resolved: {_verdict(a['verdict'])} (the verdict is "
                                           + ("upheld)" if a["upheld"] else "overturned)"),
            "JobSettled": lambda a: f"settled {_verdict(a['verdict'])}: "
                                    + ("the provider is paid" if Verdict(a["verdict"]) != Verdict.FAIL
                                       else "rejected, the price is refunded to the requester"),
        }

    def poll(self, to_block: int | None = None) -> list[JobEvent]:
        """The job's events in blocks after the last poll up to ``to_block`` (default: the head), in order."""
        client = self.market.client
        head = int(client.w3.eth.block_number) if to_block is None else to_block
        found: list[tuple[int, str, str, dict[str, Any]]] = []  # block, name, transaction, arguments
        start = self._next_block
        while start <= head:
            end = min(start + _CHUNK - 1, head)
            logs = client.w3.eth.get_logs({"address": self.market.contract.address, "fromBlock": start,
                                           "toBlock": end, "topics": [None, self._topic]})
            for log in sorted(logs, key=lambda entry: (int(entry["blockNumber"]), int(entry["logIndex"]))):
                event = self._events.get(bytes(log["topics"][0])) if log["topics"] else None
                if event is None or event.event_name not in self._describe:
                    continue
                args = _plain(event.process_log(log)["args"])
                if event.event_name == "KeyReleased":  # ciphertext for one party: its length says enough
                    args["wrappedKeyLength"] = (len(str(args.pop("wrappedKey", "0x"))) - 2) // 2
                if int(args.get("jobId", -1)) == self.job_id:
                    found.append((int(log["blockNumber"]), event.event_name, "0x" + bytes(log["transactionHash"]).hex(),
                                  args))
            start = end + 1
        self._next_block = max(self._next_block, head + 1)
        stamps: dict[int, int] = {}
        described = []
        for block, name, tx_hash, args in found:
            if block not in stamps:
                stamps[block] = int(client.w3.eth.get_block(block)["timestamp"])
            described.append(JobEvent(self.job_id, block, stamps[block], name, self._describe[name](args), tx_hash,
                                      args))
        return described

    # ───────────────────────────────────────────── descriptions that need the job's context

    def _posted(self, args: dict[str, Any]) -> str:
        terms = args["terms"]
        self._requester = str(args["requester"])
        return (f"posted by {args['requester']}: {terms['numTasks']} tasks for {webi(terms['price'])} WEBI plus a "
                f"{webi(terms['auditFee'])} WEBI audit fee ({min(terms['sampleTasks'], terms['numTasks'])} tasks "
                "re-executed)")

    def _key_released(self, args: dict[str, Any]) -> str:
        # Only the requester or the provider may release it; before JobPosted is seen, the address.
        sender = args["from"] if not self._requester else (
            "the requester" if args["from"] == self._requester else "the provider")
        return f"{sender} released the key to {args['to']}"

    def _panel(self, args: dict[str, Any]) -> str:
        self._seats = list(args["members"])
        self._committed = self._revealed = 0
        return (f"panel drawn: {', '.join(self._seats)}; votes committed by {_time(args['commitBy'])}, "
                f"revealed by {_time(args['revealBy'])}")

    def _commit(self, args: dict[str, Any]) -> str:
        self._committed += max(1, self._seats.count(args["member"]))
        return f"panel vote committed by {args['member']} ({self._committed} of {len(self._seats) or '?'} committed)"

    def _reveal(self, args: dict[str, Any]) -> str:
        self._revealed += max(1, self._seats.count(args["member"]))
        return (f"panel vote revealed by {args['member']}: {_verdict(args['vote'])} "
                f"({self._revealed} of {len(self._seats) or '?'} revealed)")


def _plain(value: Any) -> Any:
    """web3's decoded values as plain ones: bytes as 0x-hex, structs as dicts, arrays as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _verdict(value: int) -> str:
    return Verdict(int(value)).name.lower()


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["JobEvent", "JobTimeline"]
