"""``webi devnet lifecycle|example|advance``: what a person trying the marketplace needs beside the chain.

``lifecycle`` walks every path of the job state machine (``cli/lifecycle.py``, loaded only when it
runs); ``example`` writes a model folder and an inputs file to post (the README's by-hand
walk-through uses them); ``advance`` moves the devnet's clock past a window (the one-hour challenge
window, an unstake cooldown) instead of waiting it out. ``example`` and ``advance`` are for the
local devnet only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli.context import CliContext
from marketplace.errors import ConfigError

# Set by the test that runs the README's walk-through: a tiny seeded BERT instead of MiniLM-L6 (90 MB).
TINY_ENV = "WEBI_EXAMPLE_TINY"
EXAMPLE_INPUTS = 16
_UNITS = {"s": 1, "min": 60, "m": 60, "h": 3_600, "d": 86_400}


def lifecycle(
    ctx: typer.Context,
    run_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Where logs go (default: a new temporary folder).")
    ] = None,
) -> None:
    """Walk every path of the job state machine on a devnet.

    Five jobs take the paths: a pass paid after its challenge window, a cheat failed and slashed, a
    wrong verdict challenged and overturned, a late verifier replaced, an expired claim reclaimed.
    No models run; the chain's clock is moved past each window, and the ledger rebuilt from events
    is printed and checked against the token balances.
    """
    from marketplace.cli.lifecycle import run_lifecycle  # web3 and the chain modules: only for this command

    run_lifecycle(ctx.obj, run_dir)


def example(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Where to write model/ and inputs.jsonl (created if missing).")],
    tiny: Annotated[bool, typer.Option(
        "--tiny", envvar=TINY_ENV, help="Write a tiny seeded BERT instead of MiniLM-L6 (what the tests use).")] = False,
) -> None:
    """Write a model and inputs to try posting a job by hand.

    FOLDER/model is an embedding model (all-MiniLM-L6-v2, or a tiny BERT with --tiny) and
    FOLDER/inputs.jsonl holds sample inputs, ready for `webi job post --task embed`.
    """
    cli: CliContext = ctx.obj
    model, inputs = folder / "model", folder / "inputs.jsonl"
    if model.exists():
        raise ConfigError(f"{model} already exists: pick another folder, or remove it")
    folder.mkdir(parents=True, exist_ok=True)
    from marketplace.demo.run import CORPUS, default_embed_model

    if tiny:
        from marketplace.demo.models import build_bundle

        build_bundle("embed", model)
    else:
        shutil.copytree(default_embed_model(), model)
    lines = CORPUS.read_text().splitlines()[:EXAMPLE_INPUTS]
    inputs.write_text("".join(json.dumps(json.loads(line), ensure_ascii=False) + "\n" for line in lines))
    cli.console.print(f"model {model} ({'tiny BERT' if tiny else 'all-MiniLM-L6-v2'}), "
                      f"{len(lines)} inputs in {inputs}", highlight=False, soft_wrap=True)


def advance(
    ctx: typer.Context,
    duration: Annotated[str, typer.Argument(help="How far to move the clock: 90s, 30min, 1h, 3d.")],
) -> None:
    """Move the devnet's clock forward, past a window.

    A block is mined at the new time, so that the window (a challenge window, an unstake cooldown)
    is over for the next transaction. Only a local devnet's clock (chain 31337) can be moved.
    """
    from marketplace.chain.client import ChainClient
    from marketplace.chain.deployment import protocol_abis
    from marketplace.chain.devnet import increase_time

    seconds = parse_duration(duration)
    cli: CliContext = ctx.obj
    client = ChainClient.connect(cli.chain_url(), protocol_abis(), timeout=10)
    try:
        if client.chain_id != 31337:
            raise ConfigError(f"chain {client.chain_id} is not a devnet: only a local devnet's clock can be moved")
        increase_time(client, seconds)
        cli.console.print(f"devnet clock moved {duration} forward, to block {client.w3.eth.block_number} at "
                          f"{client.timestamp()}", highlight=False)
    finally:
        client.close()


def parse_duration(text: str) -> int:
    """``"1h"`` is 3600; a bare number is seconds. Refuses zero, negatives and unknown units."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text)
    if match is None or match.group(2) not in {"", *_UNITS} or int(match.group(1)) == 0:
        raise ConfigError(f"{text!r} is not a duration: write a positive number with s, min, h or d (e.g. 1h)")
    return int(match.group(1)) * _UNITS.get(match.group(2) or "s", 1)
