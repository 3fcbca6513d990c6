"""A verifier that passes without checking, for ``webi demo --lazy-verifier`` on a local devnet only.

    python -m verifier.lazy CONFIG.toml

It runs the real daemon (draws, secrets, verdicts, settlement, panel duty), but its references never
run: every sampled task passes without re-execution, in its audits and in the re-checks its
services share them with. That is the compute a lazy verifier is tempted to save; its evidence
says so. The demo uses it to show the other half of the protocol: a watchtower
re-checks the pass, challenges it, and the panel overturns it and slashes this verifier. Like
``provider.cheater``, it refuses any chain but anvil's default dev chain (31337), so it cannot
cheat anyone for real; nothing in a verifier's config can turn it on.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from marketplace.chain.devnet import DEV_CHAIN_ID
from marketplace.jobspec import JobSpec
from marketplace.keystore import load_account, read_password
from verifier import compare
from verifier.config import load_verifier_config
from verifier.daemon import VerifierDaemon
from verifier.factory import connect, create_verifier
from verifier.verdict import Outcome, References, TaskAudit

log = logging.getLogger(__name__)
LAZY_REASON = "passed without re-execution (lazy verifier, demo only)"


class LazyReferences(References):
    """References that never run: every committed output "passes", whatever it holds."""

    def audit(self, spec: JobSpec, inputs: list[str], indices: list[int],
              committed: dict[int, bytes]) -> list[TaskAudit]:
        return [TaskAudit(index, Outcome.PASS, LAZY_REASON, compare.TaskCheck(index, True, LAZY_REASON))
                for index in indices]


class LazyVerifierDaemon(VerifierDaemon):
    """The reference daemon with ``LazyReferences``: it still fetches and proves the sampled outputs
    (that costs nothing), then passes them unjudged."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.references = LazyReferences(self.references.a, self.references.b, self.references.device_lock)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m verifier.lazy CONFIG.toml")
    config = load_verifier_config(Path(sys.argv[1]))
    chain_id = connect(config).deployment.chain_id
    if chain_id != DEV_CHAIN_ID:
        raise SystemExit(f"the lazy verifier runs on the local devnet (chain {DEV_CHAIN_ID}) only, not {chain_id}")
    password = read_password(env=config.password_env, file=config.password_file)
    account = load_account(config.keystore.expanduser(), password)
    daemon = create_verifier(config, account, daemon_class=LazyVerifierDaemon)
    if not isinstance(daemon.references, LazyReferences):  # the factory ignored the switch: never pose as lazy
        raise SystemExit("verifier.factory.create_verifier did not build the lazy daemon")
    log.warning("LAZY verifier %s: every audit passes without re-execution (demo only)", account.address)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    try:
        daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    main()
