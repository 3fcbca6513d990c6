"""Compile the Solidity sources with the pinned solc-js and keep the artifacts honest.

The artifacts under ``contracts/artifacts`` are committed so that nobody needs Node.js to use
the Python package. Each records the SHA-256 of the exact standard-JSON input it came from;
``input_hash()`` recomputes that from the sources on disk, so a test can tell stale artifacts
without running the compiler.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.errors import ChainError

logger = logging.getLogger(__name__)

_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*?\bfrom\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)

# Settings are part of the input hash: changing them makes the artifacts stale, as it should.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "viaIR": False,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


@dataclass(frozen=True)
class Layout:
    """Where the sources, the libraries and the artifacts live in a checkout."""

    root: Path

    @property
    def sources(self) -> Path:
        return self.root / "contracts" / "src"

    @property
    def artifacts(self) -> Path:
        return self.root / "contracts" / "artifacts"

    @property
    def node_modules(self) -> Path:
        return self.root / "node_modules"

    @property
    def solcjs(self) -> Path:
        return self.node_modules / ".bin" / "solcjs"


def _resolve(layout: Layout, importer: str, path: str) -> str:
    """Source unit name of an import, as solc would see it (relative paths against the importer)."""
    if path.startswith("."):
        base = Path(importer).parent
        parts: list[str] = []
        for part in (base / path).parts:
            if part == "..":
                parts.pop()
            elif part != ".":
                parts.append(part)
        return "/".join(parts)
    return path


def _read_unit(layout: Layout, unit: str) -> str:
    local = layout.root / "contracts" / unit
    if unit.startswith("src/") and local.is_file():
        return local.read_text()
    library = layout.node_modules / unit
    if library.is_file():
        return library.read_text()
    raise ChainError(f"cannot resolve Solidity import {unit!r}: run `npm ci` first")


def standard_input(layout: Layout) -> dict[str, Any]:
    """The standard-JSON compiler input: every source under contracts/src and all it imports."""
    pending = sorted("src/" + p.relative_to(layout.sources).as_posix() for p in layout.sources.rglob("*.sol"))
    sources: dict[str, dict[str, str]] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        content = _read_unit(layout, unit)
        sources[unit] = {"content": content}
        pending.extend(_resolve(layout, unit, imp) for imp in _IMPORT.findall(content))
    return {"language": "Solidity", "sources": dict(sorted(sources.items())), "settings": SETTINGS}


def input_hash(layout: Layout) -> str:
    """SHA-256 over the canonical JSON of the compiler input."""
    blob = json.dumps(standard_input(layout), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def solc_version(layout: Layout) -> str:
    """The solc-js version pinned in node_modules (which `npm ci` took from package-lock.json)."""
    manifest = layout.node_modules / "solc" / "package.json"
    if not manifest.is_file():
        raise ChainError("solc-js is not installed: run `npm ci` first")
    return str(json.loads(manifest.read_text())["version"])


def _run_solcjs(layout: Layout, compiler_input: dict[str, Any]) -> dict[str, Any]:
    """solc-js's standard-JSON output for ``compiler_input``; compilation errors raise, warnings are logged."""
    if not layout.solcjs.exists():
        raise ChainError("solc-js is not installed: run `npm ci` first")
    logger.info("compiling %d source units with solc-js %s", len(compiler_input["sources"]), solc_version(layout))
    # solc-js reads stdin with readFileSync (EAGAIN on a large pipe) and exits before a piped
    # stdout drains (truncated at 64 KiB): give it regular files for both.
    with tempfile.TemporaryFile("w+") as stdin, tempfile.TemporaryFile("w+") as stdout:
        json.dump(compiler_input, stdin)
        stdin.seek(0)
        proc = subprocess.run(
            [str(layout.solcjs), "--standard-json"], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
            text=True, check=False,
        )
        stdout.seek(0)
        printed = stdout.read()
    if proc.returncode != 0:
        raise ChainError(f"solcjs failed ({proc.returncode}): {proc.stderr.strip()}")
    # solcjs may print notices (e.g. about SMT solvers) on stdout before the JSON document.
    start = printed.find("{")
    if start < 0:
        raise ChainError(f"solcjs printed no JSON: {printed.strip()[:500]} {proc.stderr.strip()[:500]}")
    output: dict[str, Any] = json.loads(printed[start:])
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise ChainError("Solidity compilation failed:\n" + "\n".join(e["formattedMessage"] for e in errors))
    for warning in output.get("errors", []):
        logger.warning("solc: %s", warning["formattedMessage"].strip())
    return output


def build_info(layout: Layout) -> dict[str, Any]:
    """A Hardhat build-info document (``hh-sol-build-info-1``) of the same sources and settings, with ASTs.

    Static analysers (slither through crytic-compile) read this format without running a compiler
    themselves, so they analyse exactly what the pinned solc-js compiles and download nothing.
    """
    compiler_input = standard_input(layout)
    selection = ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers", "userdoc", "devdoc"]
    compiler_input["settings"] = {**SETTINGS, "outputSelection": {"*": {"*": selection, "": ["ast"]}}}
    version = solc_version(layout)
    return {
        "_format": "hh-sol-build-info-1",
        "id": input_hash(layout)[:32],
        "solcVersion": version.split("+")[0],
        "solcLongVersion": version,
        "input": compiler_input,
        "output": _run_solcjs(layout, compiler_input),
    }


def compile_contracts(layout: Layout) -> dict[str, dict[str, Any]]:
    """Run solc-js on the sources; returns {contract name: artifact} for contracts under src/."""
    output = _run_solcjs(layout, standard_input(layout))
    digest = input_hash(layout)
    version = solc_version(layout)
    artifacts: dict[str, dict[str, Any]] = {}
    for unit, contracts in output["contracts"].items():
        if not unit.startswith("src/"):
            continue
        for name, compiled in contracts.items():
            bytecode = compiled["evm"]["bytecode"]["object"]
            if not bytecode:  # interfaces and abstract contracts
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceUnit": unit,
                "abi": compiled["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "compiler": {"name": "solc-js", "version": version, "settings": SETTINGS},
                "inputHash": digest,
            }
    return artifacts


def write_artifacts(layout: Layout, artifacts: dict[str, dict[str, Any]]) -> list[Path]:
    """Writes one JSON file per contract; test-only contracts go under artifacts/test/."""
    written = []
    for name, artifact in sorted(artifacts.items()):
        folder = layout.artifacts / "test" if artifact["sourceUnit"].startswith("src/test/") else layout.artifacts
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def stale_artifacts(layout: Layout) -> list[str]:
    """Names of committed artifacts whose input hash differs from the sources on disk."""
    digest = input_hash(layout)
    stale = []
    for path in sorted(layout.artifacts.rglob("*.json")):
        if json.loads(path.read_text()).get("inputHash") != digest:
            stale.append(path.stem)
    return stale
