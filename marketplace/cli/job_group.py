"""``webi job status gID`` and ``webi job results gID``: a job group followed and merged from the terminal.

``cli/job.py`` hands a ``gID`` argument here. ``--watch`` shows a rich progress bar of the tasks verified
out of the whole job, the shards claimed and by how many providers, and a line each time a shard moves;
``--retry`` re-posts failed shards (rejected, cancelled, or open past their claim window) within
``--retry-budget``. The merge writes the outputs in input order once every shard's outputs rebuild its root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from marketplace.errors import ConfigError
from marketplace.units import webi

if TYPE_CHECKING:
    from marketplace.client import Client
    from marketplace.groups import GroupView, RetryRound

_GROUP = re.compile(r"[gG](\d+)")


def parse_target(text: str) -> tuple[str, int]:
    """``"12"`` as ("job", 12) and ``"g12"`` as ("group", 12); ``ConfigError`` for anything else."""
    if text.isdigit():
        return "job", int(text)
    match = _GROUP.fullmatch(text)
    if match:
        return "group", int(match.group(1))
    raise ConfigError(f"{text!r} is neither a job number (12) nor a job group (g12)")


def summary(view: GroupView) -> str:
    """One line: the tasks verified, the shards claimed and by how many providers, the failures."""
    spread = view.providers
    line = (f"group g{view.group_id}: {view.tasks_verified:,} of {view.total:,} tasks verified; {view.claimed} of "
            f"{view.count} shards claimed by {len(spread)} provider{'' if len(spread) == 1 else 's'}; "
            f"{view.finalized} finalized")
    if view.failed:
        line += f"; failed: shards {[shard.index for shard in view.failed]}"
    if view.problems:
        line += "; problems: " + "; ".join(view.problems)
    return line


def show_group(console: Console, view: GroupView) -> None:
    console.print(escape(summary(view)), highlight=False, soft_wrap=True)
    table = Table("shard", "tasks", "job", "state", "provider", "verifier")
    for shard in view.shards:
        earlier = f" (after {', '.join(map(str, shard.attempts))})" if shard.attempts else ""
        table.add_row(str(shard.index), f"{shard.first_task:,}-{shard.first_task + shard.num_tasks - 1:,}",
                      f"{shard.job.job_id}{earlier}", shard.label(view.now), shard.job.provider or "—",
                      shard.job.verifier or "—")
    console.print(table)


def status(client: Client, console: Console, group_id: int, *, as_json: bool) -> None:
    view = client.groups.status(group_id)
    if as_json:
        typer.echo(json.dumps(view.as_dict()))
    else:
        show_group(console, view)


def watch(client: Client, console: Console, group_id: int, *, timeout: float, interval: float, as_json: bool,
          retry: bool, retry_budget: int | None, claim_window: int) -> None:
    """Follows the group until it is done, or nothing more happens without the requester; exit 2 on timeout and
    1 when it ended with shards failed (re-post them with --retry)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from marketplace.groups import GroupTimeoutError

    first = client.groups.status(group_id)
    retrier = None
    if retry:
        budget = retry_budget if retry_budget is not None else sum(
            client.protocol.market.posted(shard.job.job_id).terms.escrow for shard in first.shards)
        retrier = client.groups.retrier(group_id, budget_wei=budget, claim_window_s=claim_window)
    labels: dict[int, str] = {}
    errors = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks verified"),
               TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"g{group_id}", total=first.total)

        def changed(view: GroupView) -> None:
            for shard in view.shards:
                label = shard.label(view.now)
                if labels.get(shard.index) != label:
                    labels[shard.index] = label
                    if as_json:
                        typer.echo(json.dumps({"group_id": group_id, "shard": shard.as_dict(view.now)}))
                    else:
                        bar.console.print(f"shard {shard.index} (job {shard.job.job_id}): {label}"
                                          + (f" by {shard.job.provider}" if shard.job.provider else ""),
                                          highlight=False, soft_wrap=True)
            spread = view.providers
            bar.update(task, completed=view.tasks_verified,
                       description=f"g{group_id}: {view.claimed}/{view.count} shards claimed by {len(spread)} "
                                   f"providers, {view.finalized} finalized")

        def retried(made: RetryRound) -> None:
            if as_json:
                typer.echo(json.dumps({"group_id": group_id, "retry": made.line()}))
            else:
                bar.console.print(f"retry: {escape(made.line())}", highlight=False, soft_wrap=True)

        try:
            view = client.groups.wait(group_id, timeout=timeout, interval=interval, retry=retrier, on_change=changed,
                                      on_retry=retried)
        except GroupTimeoutError as error:
            errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(view.as_dict()))
    else:
        console.print(escape(summary(view)), highlight=False, soft_wrap=True)
        if retrier is not None and retrier.spent_wei:
            console.print(f"re-posts escrowed {webi(retrier.spent_wei)} WEBI", highlight=False)
    if not view.done:
        errors.print("[red]error:[/red] the group ended with shards failed"
                     + (" and the retry budget spent" if retrier is not None else ": re-post them with --retry"),
                     highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def results(client: Client, console: Console, group_id: int, output: Path, *, force: bool) -> bool:
    """Writes the merged outputs to ``output`` (atomically); whether a rejected shard was forced in."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    errors = Console(stderr=True)
    columns = (TextColumn("checking shards"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task("merge", total=None)
        merged = client.groups.results(group_id, force=force,
                                       on_shard=lambda done, count: bar.update(task, completed=done, total=count))
    temporary = output.with_name(output.name + ".partial")
    temporary.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in merged.outputs))
    temporary.replace(output)
    if merged.rejected:
        errors.print(f"[bold red]WARNING: shards {list(merged.rejected)} were rejected by their audit; their outputs "
                     "are written anyway (--force)[/bold red]", highlight=False, soft_wrap=True)
    elif merged.provisional:
        errors.print(f"[yellow]warning: shards {list(merged.provisional)} are not final yet (their audit or "
                     "challenge window is open)[/yellow]", highlight=False, soft_wrap=True)
    console.print(f"{len(merged.outputs):,} outputs of group g{group_id}, each shard verified against its on-chain "
                  f"root, merged in input order into {escape(str(output))}", highlight=False, soft_wrap=True)
    return bool(merged.rejected)
