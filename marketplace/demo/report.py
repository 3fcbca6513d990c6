"""The demo's printed summary: the jobs, what the requester got, the ledger, who paid, and the checks."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from marketplace.client import Client
from marketplace.demo.cast import GENERATOR, VERIFIER, WATCHTOWER
from marketplace.demo.outcome import DemoOutcome, JobOutcome
from marketplace.units import webi


def show_results(console: Console, client: Client, outcome: JobOutcome, texts: list[str]) -> None:
    """What the requester got, downloaded and checked against the on-chain root."""
    results = client.results(outcome.job_id)
    if outcome.confidentiality != "public":
        # Its inputs and outputs are the requester's secret: nothing of them goes to the console or a log.
        console.print(f"job {outcome.job_id}: {len(results)} outputs downloaded, decrypted with the job key and "
                      "verified against the on-chain root (not shown: the job is confidential)")
        return
    console.print(f"job {outcome.job_id}: {len(results)} outputs downloaded and verified against the on-chain root")
    if outcome.task == "embed":
        vectors = [result["embedding"] for result in results]
        pairs = sorted(((sum(a * b for a, b in zip(vectors[i], vectors[j], strict=True)), i, j)
                        for i in range(len(vectors)) for j in range(i + 1, len(vectors))), reverse=True)
        for similarity, i, j in pairs[:3]:
            console.print(f"  closest pair (cosine {similarity:.2f}): “{texts[i]}” ~ “{texts[j]}”", highlight=False)
    else:
        for prompt, result in list(zip(texts, results, strict=False))[:2]:
            console.print(f"  “{prompt[:48]}…” → “{result['text'][:60]}”", highlight=False)


def report(console: Console, result: DemoOutcome, discrepancies: Sequence[object]) -> None:
    label = result.labels.get
    jobs = Table("job", "task", "provider", "verifier", "verdict", "challenge", "outcome", title="jobs")
    for job in result.jobs:
        verdict = job.verdict if job.verdict == "pass" else f"[red]{job.verdict}[/red]: {job.reason}"
        challenge = "" if job.challenge is None else (
            f"by {label(job.challenge.challenger, job.challenge.challenger)}: {job.challenge.outcome}"
            + (f" ({job.challenge.verdict})" if job.challenge.verdict else ""))
        task = job.task if job.confidentiality == "public" else f"{job.task} ({job.confidentiality} confidential)"
        jobs.add_row(str(job.job_id), task, label(job.provider, job.provider), label(job.verifier, job.verifier),
                     verdict, challenge, job.state)
    console.print(jobs)
    if result.group is not None:
        shards = Table("shard", "job", "tasks", "price, WEBI", "provider", "verifier", "verdict", "outcome",
                       title=f"job group g{result.group.group_id}")
        for shard in result.group.shards:
            shards.add_row(str(shard.index), str(shard.job_id), str(shard.num_tasks), webi(shard.price),
                           label(shard.provider, shard.provider), label(shard.verifier, shard.verifier), shard.verdict,
                           shard.state)
        console.print(shards)
    books = result.ledger
    ledger = Table("account", "credited (Credited events), WEBI", "slashed stake", "bonds paid", "bonds refunded",
                   "net change (wallet + stake)", title="ledger")
    for key, change in books.net.items():
        credits = books.credits.get(key, {})
        ledger.add_row(
            label(key, key),
            "\n".join(f"{kind}: {webi(amount)}" for kind, amount in sorted(credits.items())) or "-",
            _amount(books.slashed.get(key, 0)),
            _amount(books.bonds_paid.get(key, 0)),
            _amount(books.bonds_refunded.get(key, 0)),
            ("+" if change > 0 else "") + webi(change) if change else "0",
        )
    console.print(ledger)
    console.print(f"burned: [bold]{webi(books.burned)} WEBI[/bold] (slashed value nobody gets, kept by the market "
                  "contract for good)")
    if books.slashed.get(GENERATOR):
        console.print(f"cheater slashed: [red]{webi(books.slashed[GENERATOR])} WEBI[/red] of its collateral; "
                      "10 % of it rewarded whoever proved the fault, the rest burned")
    if result.lazy_verifier and books.slashed.get(VERIFIER):
        console.print(f"lazy verifier slashed: [red]{webi(books.slashed[VERIFIER])} WEBI[/red] of its stake, after "
                      f"the watchtower's challenge; the watchtower earned "
                      f"{webi(books.credits.get(WATCHTOWER, {}).get('reward', 0))} WEBI of rewards")
    console.print(
        "[green]books balance[/green]: every wei that left one account reached another, or was burned"
        if books.conserved
        else "[red]books do not balance[/red]"
    )
    console.print(
        "[green]webi audit: clean[/green]"
        if result.audit_clean
        else f"[red]webi audit: {len(discrepancies)} discrepancies[/red]: " + "; ".join(map(str, discrepancies))
    )
    console.print(f"web app: [bold]{result.dashboard}/app[/bold] (a browser wallet on the devnet, chain 31337, posts "
                  f"jobs there; providers cash out at {result.dashboard}/app/provider)")


def _amount(wei: int) -> str:
    return webi(wei) if wei else "-"
