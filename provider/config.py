"""Provider settings: a TOML file (``[provider]`` table), then environment, then command-line flags.

Keys never go in the config: it names a V3 keystore and where its password comes from (an
environment variable or a file; otherwise the daemon prompts). Unknown keys are refused, so a
typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from marketplace.errors import ConfigError
from marketplace.home import DEFAULT_STORE, WebiHome
from marketplace.jobspec import TaskType

_FORBIDDEN = frozenset({"private_key", "privatekey", "key", "mnemonic", "password"})


Settings = TypeVar("Settings", bound=BaseModel)


class DaemonSettings(BaseModel):
    """What every WEBI daemon needs: the chain, an account, the content store, a state folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc_url: str = Field(description="the chain's JSON-RPC URL; load_settings defaults it to the running devnet")
    keystore: Path = Field(description="a V3 keystore file; or name a `wallet` in $WEBI_HOME/wallets instead")
    password_env: str | None = None
    password_file: Path | None = None
    store: str = Field(DEFAULT_STORE, description="content store: a Kubo RPC URL (default: the node), a directory, "
                                                 "or gateway+URL")
    store_token_env: str = "WEBI_STORE_TOKEN"
    state_dir: Path
    deployments_dir: Path | None = None
    max_weight_bytes: Annotated[int, Field(gt=0)] = 16 * 1024**3
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0

    @model_validator(mode="before")
    @classmethod
    def _wallet_to_keystore(cls, values: Any) -> Any:
        """``wallet = "NAME"`` is the keystore ``webi wallet new|import NAME`` wrote under $WEBI_HOME/wallets."""
        if not isinstance(values, dict) or "wallet" not in values:
            return values
        from marketplace.wallet import Wallets  # eth_account: not for `webi --help`

        values = dict(values)
        name = values.pop("wallet")
        if values.get("keystore"):
            raise ValueError("name a keystore or a wallet, not both")
        values["keystore"] = Wallets(WebiHome.from_env().wallets).path(str(name))
        return values

    @property
    def state(self) -> Path:
        return self.state_dir.expanduser()


class ProviderConfig(DaemonSettings):
    state_dir: Path = Field(default_factory=lambda: WebiHome.from_env().provider_state)
    tasks: frozenset[TaskType] = frozenset(TaskType)
    # In WEBI, not wei: TOML integers stop at 2^63, under 10 WEBI in wei.
    price_floor: dict[TaskType, Decimal] = Field(default_factory=dict, description="least WEBI per task, by task type")
    max_vram_share: Annotated[float, Field(gt=0, le=1)] = 0.9
    idle_threshold_pct: Annotated[int, Field(ge=0, le=100)] = 30
    confirmations: Annotated[int, Field(ge=0)] = 0
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    stake_wei: Annotated[int, Field(ge=0)] = 0
    # Reads of an untrusted job's spec, inputs and model listing: a store that hangs must not hold the daemon.
    fetch_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # The most one pass spends considering unclaimed jobs before it returns to the claimed ones.
    consider_budget_s: Annotated[float, Field(gt=0)] = 30.0
    # Challenge a failed verdict when our own re-check of the sampled tasks finds them within tolerance.
    appeal_fails: bool = True
    # Before a claim, run a few inputs in fp32 and bf16 and refuse a model whose outputs diverge.
    model_screen: bool = False
    screen_inputs: Annotated[int, Field(ge=1, le=64)] = 3
    # Claims held at once that are not computed yet (``provider.capacity``): one computing, one ready to start.
    max_claims: Annotated[int, Field(ge=1, le=64)] = 2
    # A claim must fit every held job's deadline with the measured seconds times this, plus a job's fixed cost.
    capacity_safety: Annotated[float, Field(ge=1.0, le=10.0)] = 1.5
    job_overhead_s: Annotated[float, Field(ge=0.0, le=3_600.0)] = 10.0
    # Signed heartbeats (GPU telemetry, jobs running, tasks/s) for the node's dashboard; default: the store's URL
    # where the store is a node (an http URL). ``heartbeats = false`` sends none.
    node_url: str | None = None
    heartbeats: bool = True
    heartbeat_interval_s: Annotated[float, Field(ge=2.0, le=300.0)] = 5.0

    def floor_wei(self, task: TaskType) -> int:
        return int(self.price_floor.get(task, Decimal(0)) * 10**18)

    def heartbeat_url(self) -> str | None:
        """The node heartbeats go to: ``node_url``, else the store when it is a URL (the node's Kubo RPC)."""
        if not self.heartbeats:
            return None
        if self.node_url:
            return self.node_url
        return self.store if self.store.startswith(("http://", "https://")) else None

    def journal_path(self, chain_id: int, address: str) -> Path:
        """One journal per chain and account, so switching either never mixes histories."""
        return self.state / f"journal-{chain_id}-{address.lower()}.sqlite"


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> ProviderConfig:
    """The config from ``path`` (if any), ``WEBI_RPC_URL``/``WEBI_STORE``, then ``overrides`` (flags); with no
    RPC URL anywhere, the running devnet's (``$WEBI_HOME/devnet.json``)."""
    return load_settings(ProviderConfig, "provider", path, overrides)


def load_settings(model: type[Settings], table: str, path: Path | None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """``model`` from the ``[table]`` of a TOML file, then the environment, then flags (the verifier's too)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read {table} config {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        values.update(document.get(table, document))
    for variable, key in (("WEBI_RPC_URL", "rpc_url"), ("WEBI_STORE", "store")):
        if os.environ.get(variable):
            values[key] = os.environ[variable]
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    secrets = _FORBIDDEN & {key.lower() for key in values}
    if secrets:
        raise ConfigError(f"the {table} config must not hold {', '.join(sorted(secrets))}: name a keystore file "
                          "and a password_env or password_file instead")
    try:
        if values.get("rpc_url"):
            return model.model_validate(values)
        # Never a guessed port: the devnet `webi devnet up` started, or a clear error once the rest is valid.
        model.model_validate(values | {"rpc_url": "unset"})
        return model.model_validate(values | {"rpc_url": WebiHome.from_env().rpc_url()})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{table} config {where}: {first['msg']}") from None
