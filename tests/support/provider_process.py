"""A provider daemon in its own process, as ``webi provider run`` starts it, with one test-only addition:
``--crash-at POINT`` kills the process with SIGKILL the first time a job reaches POINT, so that tests
can check recovery from a crash at every stage. Never used outside tests.

    python -m tests.support.provider_process CONFIG.toml [--crash-at claim-sent|claimed|computed|...]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

from marketplace.keystore import load_account, read_password
from provider.config import load_config
from provider.factory import create_daemon


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--crash-at")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = load_config(Path(args.config))
    account = load_account(config.keystore, read_password(env=config.password_env, file=config.password_file))

    def hook(point: str, job_id: int) -> None:
        if point == args.crash_at:
            logging.getLogger("crash").info("crashing at %s of job %d", point, job_id)
            os.kill(os.getpid(), signal.SIGKILL)

    daemon = create_daemon(config, account, hook=hook)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    daemon.run()


if __name__ == "__main__":
    main()
