"""Result commitments: our Merkle trees against OpenZeppelin's MerkleProof, on a real chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.chain.artifacts import load_artifact
from marketplace.errors import ContentError
from marketplace.results import (
    MerkleTree,
    canonical,
    output_manifest,
    parse_output_manifest,
    rounded,
    verify_proof,
)
from tests.conftest import Chain


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 9, 33])
def test_every_proof_verifies_on_chain(chain: Chain, count: int) -> None:
    probe, _ = chain.client.deploy(chain.owner, load_artifact("MerkleProbe"))
    outputs = [canonical({"task": index, "embedding": rounded([index / 3, -index / 7])}) for index in range(count)]
    tree = MerkleTree(outputs)
    for index, output in enumerate(outputs):
        proof = tree.proof(index)
        assert verify_proof(tree.root, index, output, proof)
        assert probe.functions.verify(proof, tree.root, index, output).call()
        assert not probe.functions.verify(proof, tree.root, index, output + b" ").call()
        if count > 1:
            assert not probe.functions.verify(proof, tree.root, (index + 1) % count, output).call()


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=40), st.data())
def test_proofs_hold_and_tampering_fails(outputs: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(outputs)
    index = data.draw(st.integers(0, len(outputs) - 1))
    assert verify_proof(tree.root, index, outputs[index], tree.proof(index))
    assert not verify_proof(tree.root, index, outputs[index] + b"x", tree.proof(index))


def test_manifest_round_trip_and_count_check() -> None:
    outputs = [canonical({"text": "a"}), canonical({"text": "b\\nc"})]
    manifest = output_manifest(outputs)
    assert parse_output_manifest(manifest, 2) == outputs
    with pytest.raises(ContentError, match="2 outputs for 3 tasks"):
        parse_output_manifest(manifest, 3)


def test_canonical_bytes_are_stable() -> None:
    assert canonical({"b": 1, "a": [0.1]}) == b'{"a":[0.1],"b":1}'
    assert rounded([0.123456789, 1e-12, -2.5]) == [0.1234568, 0.0, -2.5]
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})
