"""Job results: canonical output bytes per task, the output manifest, and the Merkle commitment.

The provider commits on-chain to a Merkle root over one leaf per task; anyone holding the output
manifest can prove any task's output against that root. Leaves and pairs follow OpenZeppelin's
``MerkleProof``: ``leaf = keccak256(bytes.concat(keccak256(abi.encode(uint256 index, bytes32
sha256(output)))))`` (hashed twice so a leaf can never pass for an inner node), and inner nodes
hash their two children in sorted order, so a proof is just the list of siblings. The output is
digested with sha256 (a Solidity precompile too) rather than keccak256: outputs run to tens of MB
per job, and hashlib's sha256 is about ten times faster here than any keccak Python has.

Outputs are compact JSON with sorted keys and floats rounded to 7 decimal places (embeddings and
probabilities lie in [-1, 1], where that is about float32's precision): the same model output always
gives the same bytes, and the verifier compares values with tolerances, never bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from Crypto.Hash import keccak as _keccak

from marketplace.errors import ContentError


def canonical(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


DECIMALS = 7


def rounded(values: Sequence[float]) -> list[float]:
    return [round(value, DECIMALS) for value in values]


def output_manifest(outputs: Sequence[bytes]) -> bytes:
    """The manifest stored at the job's output CID: one canonical output per line, in task order."""
    if any(b"\n" in output for output in outputs):
        raise ValueError("canonical outputs never contain a newline")
    return b"".join(output + b"\n" for output in outputs)


def parse_output_manifest(data: bytes, num_tasks: int) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != num_tasks:
        raise ContentError(f"output manifest has {len(lines)} outputs for {num_tasks} tasks")
    return lines


def keccak(data: bytes) -> bytes:
    """keccak256 straight from pycryptodome (what eth-hash wraps), a third faster without the wrapper."""
    return _keccak.new(digest_bits=256, data=data).digest()


def leaf_hash(index: int, output: bytes) -> bytes:
    # abi.encode(uint256, bytes32) is the two words side by side; spelled out, it is 20x faster than eth_abi.
    return keccak(keccak(index.to_bytes(32, "big") + hashlib.sha256(output).digest()))


def _pair(left: bytes, right: bytes) -> bytes:
    return keccak(left + right if left < right else right + left)


class MerkleTree:
    """The commitment over a job's outputs; ``root`` goes on-chain, ``proof(i)`` proves task ``i``."""

    def __init__(self, outputs: Sequence[bytes]) -> None:
        if not outputs:
            raise ValueError("a job has at least one task")
        self._layers = self._build([leaf_hash(index, output) for index, output in enumerate(outputs)])

    @classmethod
    def of_leaves(cls, leaves: Sequence[bytes]) -> MerkleTree:
        """A tree over leaves hashed elsewhere (an allowlist's), with the same pairs and proofs."""
        if not leaves:
            raise ValueError("a Merkle tree has at least one leaf")
        tree = cls.__new__(cls)
        tree._layers = cls._build(list(leaves))
        return tree

    @staticmethod
    def _build(leaves: list[bytes]) -> list[list[bytes]]:
        layers = [leaves]
        while len(layers[-1]) > 1:
            below = layers[-1]
            layers.append([_pair(below[i], below[i + 1]) if i + 1 < len(below) else below[i]
                           for i in range(0, len(below), 2)])
        return layers

    @property
    def root(self) -> bytes:
        return self._layers[-1][0]

    def leaf(self, index: int) -> bytes:
        return self._layers[0][index]

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self._layers[0]):
            raise IndexError(f"task {index} is not in this job")
        siblings = []
        for layer in self._layers[:-1]:
            sibling = index ^ 1
            if sibling < len(layer):
                siblings.append(layer[sibling])
            index //= 2
        return siblings


def verify_proof(root: bytes, index: int, output: bytes, proof: Sequence[bytes]) -> bool:
    """OpenZeppelin's ``MerkleProof.verify`` for task ``index`` with ``output``."""
    node = leaf_hash(index, output)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
