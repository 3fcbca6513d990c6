"""A provider that cheats, for ``webi demo --cheater`` on a local devnet only.

    python -m provider.cheater CONFIG.toml

It runs the real daemon, but every output is replaced with a well-formed wrong answer (an
embedding pointing elsewhere, other generated tokens), so the demo can show the verifier catching
it and the contract slashing it. It refuses any chain but anvil's default dev chain (31337), so it
cannot cheat anyone for real.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from marketplace.chain.devnet import DEV_CHAIN_ID
from marketplace.jobspec import JobSpec, TaskType
from marketplace.keystore import load_account, read_password
from marketplace.results import canonical, rounded
from provider.config import load_config
from provider.factory import connect, create_daemon
from provider.runtime import Runtime


class WrongAnswers(Runtime):
    """Outputs of the right shape and the wrong content; the same for every input (cheap to make)."""

    def run(
        self,
        spec: JobSpec,
        inputs: Sequence[str],
        *,
        indices: Sequence[int] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        honest = super().run(spec, inputs[:1], indices=[0])[0]
        value = json.loads(honest)
        if spec.task == TaskType.EMBED:
            wrong = canonical({"embedding": rounded([-x for x in value["embedding"]])})
        elif spec.task == TaskType.CLASSIFY:
            wrong = canonical({**value, "label_id": (value["label_id"] + 1) % len(value["probabilities"])})
        else:
            tokenizer = self.load(spec, self.devices[0]).tokenizer
            tokens = [(token + 7) % tokenizer.vocab_size for token in value["tokens"]]
            wrong = canonical({"text": tokenizer.decode(tokens, skip_special_tokens=True), "tokens": tokens})
        count = len(inputs) if indices is None else len(indices)
        if progress is not None:
            progress(count)
        return [wrong] * count


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Its re-check would agree with its own wrong answers: the demo shows the fail settle, not a challenge.
    config = load_config(Path(sys.argv[1]), {"appeal_fails": False})
    chain_id = connect(config).deployment.chain_id
    if chain_id != DEV_CHAIN_ID:
        raise SystemExit(f"the cheating provider runs on the local devnet (chain {DEV_CHAIN_ID}) only, not {chain_id}")
    account = load_account(config.keystore, read_password(env=config.password_env, file=config.password_file))
    daemon = create_daemon(config, account, runtime_class=WrongAnswers, metrics=False)
    logging.getLogger(__name__).warning("CHEATING provider %s: every output is wrong (demo only)", account.address)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    try:
        daemon.run()
    finally:
        daemon.close()


if __name__ == "__main__":
    main()
