"""The committed artifacts are what the pinned compiler makes of the sources on disk."""

from __future__ import annotations

import json
import shutil

from marketplace.chain.artifacts import repo_root
from marketplace.chain.compiler import Layout, compile_contracts, input_hash, solc_version, stale_artifacts


def test_committed_artifacts_match_the_sources() -> None:
    layout = Layout(repo_root())
    assert stale_artifacts(layout) == [], "run python scripts/compile_contracts.py and commit the artifacts"


def test_recompiling_gives_the_committed_bytecode() -> None:
    layout = Layout(repo_root())
    fresh = compile_contracts(layout)
    assert {"WebiToken", "JobMarket", "Disputes", "Governance", "MerkleProbe"} <= set(fresh)
    assert not {"AuditProbe", "DodgingProvider"} & set(fresh)  # the old protocol's probes are gone
    for name, artifact in fresh.items():
        folder = layout.artifacts / "test" if artifact["sourceUnit"].startswith("src/test/") else layout.artifacts
        committed = json.loads((folder / f"{name}.json").read_text())
        assert committed["bytecode"] == artifact["bytecode"], name
        assert committed["compiler"]["version"] == solc_version(layout)


def test_editing_a_source_makes_artifacts_stale(tmp_path) -> None:
    # Copy the sources, change one comment: the input hash must change.
    root = repo_root()
    original = input_hash(Layout(root))
    copy = tmp_path / "checkout"
    (copy / "contracts").mkdir(parents=True)
    shutil.copytree(root / "contracts" / "src", copy / "contracts" / "src")
    shutil.copytree(root / "contracts" / "artifacts", copy / "contracts" / "artifacts")
    (copy / "node_modules").symlink_to(root / "node_modules")
    copied = Layout(copy)
    assert input_hash(copied) == original
    market = copy / "contracts" / "src" / "JobMarket.sol"
    market.write_text(market.read_text() + "\n// edited\n")
    assert "JobMarket" in stale_artifacts(copied)
