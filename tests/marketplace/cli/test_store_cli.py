"""`webi store ...` as a user runs it: real processes, a real local store, a real served node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from marketplace.chain.devnet import free_port
from tests.marketplace.storage.conftest import make_tree, pseudo_random

WEBI = [sys.executable, "-m", "marketplace.cli"]


def webi(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    # A folder store under the home: these tests start no node (the default store is the node's URL).
    environment = {**os.environ, "WEBI_HOME": str(home), "WEBI_STORE": str(home / "store"), "COLUMNS": "200",
                   **(env or {})}
    return subprocess.run([*WEBI, "store", *args], capture_output=True, env=environment, timeout=120, check=False)


def test_add_cat_get_export_import(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree = make_tree(tmp_path / "model")
    hashed = webi("add", "-r", "--only-hash", str(tree), home=home)
    assert hashed.returncode == 0, hashed.stderr
    assert not (home / "store").exists()
    added = webi("add", "-r", str(tree), home=home)
    assert added.returncode == 0, added.stderr
    cid = added.stdout.decode().strip()
    assert cid == hashed.stdout.decode().strip() and cid.startswith("bafy")

    cat = webi("cat", f"{cid}/weights/model.safetensors", home=home)
    assert cat.stdout == (tree / "weights" / "model.safetensors").read_bytes()
    got = webi("get", cid, "-o", str(tmp_path / "copy"), home=home)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "copy" / "tokenizer" / "vocab.txt").read_text() == "[PAD]\n[UNK]\nhello\n"
    listing = webi("ls", cid, home=home)
    assert b"config.json" in listing.stdout and b"weights" in listing.stdout

    exported = webi("export", cid, "-o", str(tmp_path / "model.car"), home=home)
    assert exported.returncode == 0, exported.stderr
    imported = webi("import", str(tmp_path / "model.car"), home=tmp_path / "other-home")
    assert imported.stdout.decode().split() == [cid]


def test_errors_are_one_line(tmp_path: Path) -> None:
    missing = webi("cat", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", home=tmp_path)
    assert missing.returncode == 1
    assert b"is not in the local store" in missing.stderr and b"Traceback" not in missing.stderr
    bad = webi("cat", "not-a-cid", home=tmp_path)
    assert bad.returncode == 1 and b"not a CID" in bad.stderr
    truncated = tmp_path / "bad.car"
    truncated.write_bytes(b"\x3a\xa2")
    refused = webi("import", str(truncated), home=tmp_path)
    assert refused.returncode == 1 and b"truncated" in refused.stderr


def test_serve_then_add_through_the_rpc_api(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WEBI_HOME": str(tmp_path / "node-home"), "WEBI_STORE_TOKEN": "test-token"}
    server = subprocess.Popen([*WEBI, "store", "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "store server did not start"
            time.sleep(0.05)
        data = tmp_path / "inputs.jsonl"
        data.write_bytes(pseudo_random(600_000))
        remote = {"WEBI_STORE": url, "WEBI_STORE_TOKEN": "test-token"}
        added = webi("add", str(data), home=tmp_path, env=remote)
        assert added.returncode == 0, added.stderr
        cid = added.stdout.decode().strip()
        refused = webi("add", str(data), home=tmp_path, env={"WEBI_STORE": url, "WEBI_STORE_TOKEN": ""})
        assert refused.returncode == 1 and b"write token" in refused.stderr
        through_gateway = webi("cat", cid, home=tmp_path, env={"WEBI_STORE": f"gateway+{url}"})
        assert through_gateway.stdout == data.read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout:
            server.stdout.close()
