"""Compile contracts/src with the pinned solc-js and write the committed artifacts.

    python scripts/compile_contracts.py           # compile and write contracts/artifacts/
    python scripts/compile_contracts.py --check   # exit 1 if the committed artifacts are stale
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from marketplace.chain.compiler import Layout, compile_contracts, stale_artifacts, write_artifacts

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the artifacts are current")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout = Layout(ROOT)
    if args.check:
        stale = stale_artifacts(layout)
        if stale:
            logging.error("stale artifacts: %s (run python scripts/compile_contracts.py)", ", ".join(stale))
            return 1
        logging.info("artifacts are current")
        return 0
    for path in write_artifacts(layout, compile_contracts(layout)):
        logging.info("wrote %s", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
