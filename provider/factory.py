"""Builds a provider daemon from its config: chain, deployment, stores, runtimes, journal, output archive, GPUs,
and the account's encryption keys (confidential jobs)."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount

from marketplace.chain.client import DAEMON_CONNECT_WAIT_S, ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore, open_store
from marketplace.storage.gateway import GatewayStore
from marketplace.storage.kubo import KuboStore
from provider.confidential import load_party_keys
from provider.config import ProviderConfig
from provider.daemon import Hook, ProviderDaemon
from provider.gpu import Gpus
from provider.heartbeats import HeartbeatSender
from provider.journal import Journal
from provider.metrics import ProviderMetrics
from provider.outputs import OutputArchive
from provider.runtime import Runtime, RuntimeLimits


def connect(config: ProviderConfig, *, wait_s: float = 0.0) -> Protocol:
    """The protocol on the config's chain; ``wait_s`` waits that long for an unreachable chain (the daemon
    waits ``DAEMON_CONNECT_WAIT_S``; a one-shot command reports it at once)."""
    client = ChainClient.connect(config.rpc_url, protocol_abis(), wait_s=wait_s)
    return connect_protocol(client, Deployment.load(client.chain_id, config.deployments_dir))


def content_store(config: ProviderConfig) -> ContentStore:
    return open_store(config.store, token=os.environ.get(config.store_token_env) or None)


def intake_store(config: ProviderConfig) -> ContentStore:
    """The same store, for reading untrusted jobs: every read gives up after ``fetch_timeout_s`` of silence.

    Model weights and output uploads keep the store's longer timeout (``content_store``).
    """
    location, timeout = config.store, config.fetch_timeout_s
    if location.startswith("gateway+"):
        return GatewayStore(location.removeprefix("gateway+"), timeout=timeout)
    if location.startswith(("http://", "https://")):
        return KuboStore(location, token=os.environ.get(config.store_token_env) or None, timeout=timeout)
    return open_store(location)


def create_daemon(config: ProviderConfig, account: LocalAccount, *, hook: Hook | None = None,
                  metrics: bool = True, runtime_class: type[Runtime] = Runtime,
                  party_keys: list[PartyKey] | None = None) -> ProviderDaemon:
    """The daemon for ``account``. ``party_keys``: its encryption keys, loaded from beside the keystore
    (with the config's password source) when not given; none without a key file (confidential jobs refused)."""
    protocol = connect(config, wait_s=DAEMON_CONNECT_WAIT_S)
    store = content_store(config)
    limits = RuntimeLimits(max_weight_bytes=config.max_weight_bytes, max_vram_share=config.max_vram_share)
    runtime = runtime_class(store, config.state / "cache", limits=limits)
    intake = Runtime(intake_store(config), config.state / "cache", devices=runtime.devices, limits=limits)
    journal = Journal(config.journal_path(protocol.deployment.chain_id, account.address))
    archive = OutputArchive(config.state / f"outputs-{protocol.deployment.chain_id}-{account.address.lower()}")
    return ProviderDaemon(config, account, protocol.market, store, runtime, journal, Gpus(),
                          ProviderMetrics() if metrics else None, hook, token=protocol.token, intake=intake,
                          archive=archive,
                          party_keys=load_party_keys(config) if party_keys is None else party_keys)


def create_heartbeats(config: ProviderConfig, account: LocalAccount, daemon: ProviderDaemon) -> HeartbeatSender | None:
    """The daemon's heartbeat sender, or None where the config names no node (a directory store, heartbeats off)."""
    url = config.heartbeat_url()
    if url is None:
        return None
    market = daemon.market
    return HeartbeatSender(url, account, market.client.chain_id, market.address, daemon.gpus, daemon.pulse,
                           interval_s=config.heartbeat_interval_s)
