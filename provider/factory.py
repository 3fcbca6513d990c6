"""Builds a provider daemon from its config: chain, deployment, store, runtime, journal, GPUs."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.storage import ContentStore, open_store
from provider.config import ProviderConfig
from provider.daemon import Hook, ProviderDaemon
from provider.gpu import Gpus
from provider.journal import Journal
from provider.metrics import ProviderMetrics
from provider.runtime import Runtime, RuntimeLimits


def connect(config: ProviderConfig) -> Protocol:
    client = ChainClient.connect(config.rpc_url, protocol_abis())
    return connect_protocol(client, Deployment.load(client.chain_id, config.deployments_dir))


def content_store(config: ProviderConfig) -> ContentStore:
    return open_store(config.store, token=os.environ.get(config.store_token_env) or None)


def create_daemon(config: ProviderConfig, account: LocalAccount, *, hook: Hook | None = None,
                  metrics: bool = True, runtime_class: type[Runtime] = Runtime) -> ProviderDaemon:
    protocol = connect(config)
    store = content_store(config)
    limits = RuntimeLimits(max_weight_bytes=config.max_weight_bytes, max_vram_share=config.max_vram_share)
    runtime = runtime_class(store, config.state / "cache", limits=limits)
    journal = Journal(config.journal_path(protocol.deployment.chain_id, account.address))
    return ProviderDaemon(config, account, protocol.market, store, runtime, journal, Gpus(),
                          ProviderMetrics() if metrics else None, hook)
