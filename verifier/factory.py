"""Builds a verifier daemon from its config."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount

from marketplace.chain.client import ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.storage import open_store
from provider.runtime import Runtime, RuntimeLimits
from provider.runtime.device import DTYPES
from verifier.config import VerifierConfig
from verifier.daemon import VerifierDaemon
from verifier.journal import AuditJournal


def connect(config: VerifierConfig) -> Protocol:
    client = ChainClient.connect(config.rpc_url, protocol_abis())
    return connect_protocol(client, Deployment.load(client.chain_id, config.deployments_dir))


def create_verifier(config: VerifierConfig, account: LocalAccount) -> VerifierDaemon:
    protocol = connect(config)
    store = open_store(config.store, token=os.environ.get(config.store_token_env) or None)
    runtime = Runtime(store, config.state / "cache", dtype=None if config.dtype == "auto" else DTYPES[config.dtype],
                      limits=RuntimeLimits(max_weight_bytes=config.max_weight_bytes))
    journal = AuditJournal(config.journal_path(protocol.deployment.chain_id, account.address))
    return VerifierDaemon(account, protocol.market, store, runtime, journal, config.poll_interval_s)
