"""Builds a verifier daemon from its config."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount

from marketplace.chain.client import DAEMON_CONNECT_WAIT_S, ChainClient
from marketplace.chain.deployment import Deployment, Protocol, connect_protocol, protocol_abis
from marketplace.sealed.keys import PartyKey
from marketplace.storage import ContentStore, open_store
from provider.runtime import Runtime, RuntimeLimits
from provider.runtime.device import DTYPES
from verifier.config import VerifierConfig
from verifier.daemon import Service, VerifierDaemon
from verifier.journal import AuditJournal
from verifier.panels import PanelDuty, PanelJournal
from verifier.recheck import Rechecker
from verifier.watchtower import WatchJournal, Watchtower


def connect(config: VerifierConfig, *, wait_s: float = 0.0) -> Protocol:
    """The protocol on the config's chain; ``wait_s`` waits that long for an unreachable chain (the daemon
    waits ``DAEMON_CONNECT_WAIT_S``; a one-shot command reports it at once)."""
    client = ChainClient.connect(config.rpc_url, protocol_abis(), wait_s=wait_s)
    return connect_protocol(client, Deployment.load(client.chain_id, config.deployments_dir))


def content_store(config: VerifierConfig) -> ContentStore:
    return open_store(config.store, token=os.environ.get(config.store_token_env) or None)


def create_verifier(config: VerifierConfig, account: LocalAccount, *,
                    daemon_class: type[VerifierDaemon] = VerifierDaemon,
                    party_keys: list[PartyKey] | None = None) -> VerifierDaemon:
    """``daemon_class`` swaps the daemon for a demo's misbehaving one (``verifier.lazy``); nothing else does.
    ``party_keys`` open confidential jobs' keys (``verifier.confidential.load_party_keys``); none: those
    audits are inconclusive."""
    protocol = connect(config, wait_s=DAEMON_CONNECT_WAIT_S)
    store = content_store(config)
    runtime = Runtime(store, config.state / "cache", dtype=None if config.dtype == "auto" else DTYPES[config.dtype],
                      limits=RuntimeLimits(max_weight_bytes=config.max_weight_bytes))
    chain_id = protocol.deployment.chain_id
    journal = AuditJournal(config.journal_path(chain_id, account.address))
    daemon = daemon_class(account, protocol.market, store, runtime, journal, config.poll_interval_s,
                          max_parallel_audits=config.max_parallel_audits,
                          unavailable_grace_s=config.unavailable_grace_s, party_keys=list(party_keys or []))
    # The services re-check by the audits' path, on the daemon's references (one device lock for all).
    rechecker = Rechecker(protocol.market, store, daemon.references, daemon.keys)
    services: list[Service] = [PanelDuty(account, protocol.market, rechecker,
                                         PanelJournal(config.panel_journal_path(chain_id, account.address)),
                                         config.poll_interval_s)]
    if config.watch_share > 0:
        services.append(Watchtower(account, protocol.market, protocol.token, rechecker,
                                   WatchJournal(config.watch_journal_path(chain_id, account.address)),
                                   config.watch_share, config.poll_interval_s))
    daemon.services.extend(services)
    return daemon
