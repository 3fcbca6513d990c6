"""The committed web app bundle is what the pinned esbuild and viem make of webapp/src (as the contract artifacts
are what the pinned solc makes of the sources): a stale bundle fails here, naming the command that rebuilds it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from marketplace.chain.artifacts import repo_root
from marketplace.node.webapp import STATIC

BUILD = ["node", "webapp/build.mjs"]


def build(out: Path, root: Path | None = None) -> bytes:
    root = root or repo_root()
    assert shutil.which("node"), "the bundle test needs Node.js (./dev needs it for solc-js and anvil too)"
    if not (repo_root() / "node_modules" / "esbuild").is_dir():
        pytest.fail("node_modules/esbuild is missing: run ./dev setup (npm ci installs the pinned packages)")
    done = subprocess.run([*BUILD, "--out", str(out)], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def test_the_committed_bundle_is_what_the_sources_build(tmp_path: Path) -> None:
    fresh = build(tmp_path / "app.js")
    assert fresh == (STATIC / "app.js").read_bytes(), "the bundle is stale: run node webapp/build.mjs and commit it"
    assert b"postJobWithPermit" in fresh and b"SampleValueAboveMaximum" in fresh  # the ABIs, errors included


def test_editing_a_source_makes_the_bundle_differ(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(repo_root() / "webapp", root / "webapp")
    shutil.copytree(repo_root() / "contracts" / "artifacts", root / "contracts" / "artifacts")
    (root / "node_modules").symlink_to(repo_root() / "node_modules")
    source = root / "webapp" / "src" / "errors.js"
    source.write_text(source.read_text().replace("nothing was signed or sent", "nothing was signed nor sent"))
    assert build(tmp_path / "app.js", root) != (STATIC / "app.js").read_bytes()
