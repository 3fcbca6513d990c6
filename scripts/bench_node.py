"""Marketplace node: indexer ingest rate and /v1/jobs latency under concurrent clients.

    python scripts/bench_node.py [--jobs 5200] [--clients 100] [--requests 30000] [--json]

Starts a devnet, posts ``--jobs`` jobs from several requesters (each post logs JobPosted and the
escrow's Transfer: 2 events; 5,200 jobs give over 10,000 events), then:

  ingest_events_per_s  events / seconds for a fresh indexer to fold and store the whole history
                       (eth_getLogs, decoding, SQLite writes; goal >= 2,000)
  p50_ms, p99_ms       latency of GET /v1/jobs (first page, 50 jobs) from --clients concurrent
                       keep-alive clients (a closed loop) in another process, against `webi serve`
                       in its own process, over --requests requests (goal p99 <= 50 ms). Runs much
                       shorter than the default include the first second, when 100 connections
                       open at once, and their p99 is that transient's.
  requests_per_s       what those clients got through
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketplace.chain.deployment import WEI
from marketplace.chain.devnet import Anvil, Devnet, deploy_devnet, dev_account, free_port
from marketplace.indexer import Indexer, create_db
from marketplace.protocol import JobRequest

GOALS = {"ingest_events_per_s": 2_000, "p99_ms": 50}
CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
MAX_UINT = 2**256 - 1


def post_many(net: Devnet, jobs: int, requesters: int = 8) -> None:
    """Signs every post locally with explicit nonces and sends them without waiting for each receipt."""
    client, market, token = net.client, net.protocol.market, net.protocol.token
    w3 = client.w3
    accounts = [dev_account(index) for index in range(1, requesters + 1)]
    for account in accounts:
        token.approve(account, market.address, MAX_UINT)
    claim_by = client.timestamp() + 30 * 24 * 3_600
    last = None
    nonces = {account.address: w3.eth.get_transaction_count(account.address) for account in accounts}
    gas_price = 2 * int(w3.eth.gas_price)
    for number in range(jobs):
        account = accounts[number % len(accounts)]
        request = JobRequest(CID, 16, (1 + number % 25) * WEI, claim_by, 600, 4)
        tx = market.contract.functions.postJob(request.as_tuple()).build_transaction(
            {
                "from": account.address,
                "nonce": nonces[account.address],
                "gas": 300_000,
                "gasPrice": gas_price,
                "chainId": client.chain_id,
            }
        )
        nonces[account.address] += 1
        last = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    assert last is not None
    receipt = w3.eth.wait_for_transaction_receipt(last, timeout=600)
    assert receipt["status"] == 1


async def _load(url: str, clients: int, requests: int) -> dict[str, float]:
    """``clients`` keep-alive HTTP/1.1 connections, each sending its next request when the last one is
    answered (a closed loop). A minimal client on asyncio streams, so that the load generator's own
    cost stays small next to the server's on a machine with few cores."""
    host, port = url.removeprefix("http://").split(":")
    request = f"GET /v1/jobs HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    latencies: list[float] = []
    remaining = requests

    async def connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            await exchange(reader, writer)  # warm up
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                await exchange(reader, writer)
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()
            await writer.wait_closed()

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
    }


def latency(net: Devnet, home: Path, clients: int, requests: int) -> dict[str, float]:
    port = free_port()
    deployments = home / "deployments"
    net.protocol.deployment.save(deployments)
    env = {**os.environ, "WEBI_HOME": str(home)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketplace.cli",
            "--rpc-url",
            net.anvil.rpc_url,
            "serve",
            "--port",
            str(port),
            "--deployments",
            str(deployments),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(home / "node.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        head = net.client.w3.eth.block_number
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/healthz").json()["indexed_block"] >= head:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the node did not catch up; see {home / 'node.log'}")
            time.sleep(0.2)
        client = subprocess.run(
            [sys.executable, __file__, "--load", url, "--clients", str(clients), "--requests", str(requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures: dict[str, float] = json.loads(client.stdout)
        return figures
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5_200)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the client process
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(_load(args.load, args.clients, args.requests))))
        return 0
    home = Path(tempfile.mkdtemp(prefix="webi-bench-node-"))
    with Anvil(accounts=10, log_path=home / "anvil.log") as anvil:
        net = deploy_devnet(anvil, fund_accounts=9)
        post_many(net, args.jobs)
        engine = create_db(home / "ingest.db")
        start = time.perf_counter()
        indexer = Indexer(engine, net.client, net.protocol.deployment)
        progress = indexer.step()
        seconds = time.perf_counter() - start
        figures = {
            "events": progress.events,
            "ingest_s": round(seconds, 3),
            "ingest_events_per_s": round(progress.events / seconds, 1),
            **latency(net, home, args.clients, args.requests),
            "clients": args.clients,
        }
    shutil.rmtree(home, ignore_errors=True)  # kept when something failed: the node's and anvil's logs are there
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table("figure", "value", "goal", title="marketplace node")
    for name, value in figures.items():
        goal = {"ingest_events_per_s": ">= 2,000", "p99_ms": "<= 50"}.get(name, "")
        table.add_row(name, str(value), goal)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
