"""A job's inputs and allowlist as the requester gives them, checked before anything is uploaded or spent."""

from __future__ import annotations

from pathlib import Path

from eth_utils.address import is_address, to_checksum_address

from marketplace.errors import ConfigError
from marketplace.jobspec import MAX_TASKS, parse_inputs
from marketplace.protocol import Allowlist


def read_inputs(inputs: list[str] | Path, limit: int = MAX_TASKS) -> list[str]:
    """A job's input texts from a list or a JSONL file, checked (``JobSpecError`` names the bad line); a job
    group's (``limit``: all its shards') may be longer than one job's."""
    texts = parse_inputs(inputs.read_bytes(), _count_lines(inputs)) if isinstance(inputs, Path) else list(inputs)
    if not texts or len(texts) > limit:
        whole = "a job" if limit == MAX_TASKS else "a job group"
        raise ConfigError(f"{whole} has 1 to {limit:,} inputs, not {len(texts):,}"
                          + (": shard it (--shard-tasks N)" if limit == MAX_TASKS and texts else ""))
    return texts


def allowlist_of(addresses: list[str]) -> Allowlist:
    """The allowlist of ``addresses`` (checksummed, each once); ``ConfigError`` for one that is not an address."""
    members: dict[str, None] = {}
    for address in addresses:
        if not is_address(address):
            raise ConfigError(f"allowlist: {address!r} is not an address")
        members[to_checksum_address(address)] = None
    return Allowlist(tuple(sorted(members)))


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
