"""What a marketplace node needs: a chain, a deployment, a database, a content store folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class NodeSettings(BaseModel):
    """What ``webi serve`` builds the node from: its flags (each with a ``WEBI_NODE_*`` variable) set the chain,
    the files, the confirmations and the timings; the rest keep these defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc_url: str = "http://127.0.0.1:8545"
    deployments_dir: Path | None = None
    database: str = Field("~/.webi/node/index.db", description="a SQLite file, or a SQLAlchemy URL (postgresql://…)")
    store_dir: Path = Path("~/.webi/node/store")
    store_token_env: str = "WEBI_STORE_TOKEN"
    max_upload_bytes: Annotated[int, Field(gt=0)] = 8 * 1024**3
    max_inputs_bytes: Annotated[int, Field(
        gt=0, description="the largest inputs file the web app may upload (a job's JSONL)")] = 64 * 1024**2
    session_ttl_s: Annotated[float, Field(
        gt=0, description="how long a wallet stays signed in to the web app")] = 3600.0
    public_url: str | None = Field(
        default=None, description="the node's public origin (https://node.example): the only domain its sign-in "
        "messages name (default: the request's Host, for a node only this machine reaches)")
    public_rpc_url: str | None = Field(
        default=None, description="the JSON-RPC URL the web app offers wallets that add the chain (default: rpc_url)")
    confirmations: Annotated[int, Field(ge=0)] = 0
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    rpc_timeout_s: Annotated[float, Field(gt=0, description="seconds one RPC request may take")] = 10.0
    connect_wait_s: Annotated[float, Field(
        ge=0, description="how long a node started while its chain is unreachable waits for it (it needs the "
        "chain id to load its deployment); each try is logged")] = 120.0
    chain_stale_s: Annotated[float, Field(
        gt=0, description="/healthz reports the chain down after this long without an answer "
        "(at least 3 poll intervals)")] = 10.0
    lag_window_s: Annotated[float, Field(
        gt=0, description="/healthz calls the lag growing when it is larger than this long ago")] = 60.0
    page_size: Annotated[int, Field(gt=0, le=500)] = 50

    @property
    def stale_after_s(self) -> float:
        """How long the chain may stay silent before /healthz calls it down: a poll or two may pass quietly."""
        return max(self.chain_stale_s, 3 * self.poll_interval_s)
