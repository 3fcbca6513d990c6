"""Answering a reveal demand: the sampled outputs and their Merkle proofs, on-chain, before the deadline.

A verifier that cannot fetch the outputs reveals its secret with ``demandReveal``; from then on
the sample is public (``sampledTasks``) and the provider has ``revealWindow`` to put those outputs
on-chain, each with its proof against the committed root, or anyone may reject the job
(``failUnrevealed``). The payload is built from the provider's own copy of what it committed
(``provider.outputs``), so an outage of the content store costs only the gas of the reveal. A
confidential job's outputs go sealed to the job key, each with its proof inside (``sealed_reveal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketplace.results import MerkleTree, verify_proof
from marketplace.sealed.envelope import Envelope, seal_revealed


@dataclass(frozen=True)
class Reveal:
    """What ``revealOutputs`` takes: the outputs at the sampled indices, in the sample's order, and proofs."""

    indices: tuple[int, ...]
    outputs: tuple[bytes, ...]
    proofs: tuple[tuple[bytes, ...], ...]


def reveal_payload(outputs: Sequence[bytes], tree: MerkleTree, indices: Sequence[int]) -> Reveal:
    """The reveal for ``indices`` (the contract's order); each proof is checked here before it costs gas."""
    chosen, proofs = [], []
    for index in indices:
        if not 0 <= index < len(outputs):
            raise ValueError(f"sampled task {index} is outside the job's {len(outputs)} tasks")
        proof = tree.proof(index)
        if not verify_proof(tree.root, index, outputs[index], proof):
            raise ValueError(f"the proof of task {index} does not verify against the root")
        chosen.append(outputs[index])
        proofs.append(tuple(proof))
    return Reveal(tuple(indices), tuple(chosen), tuple(proofs))


def sealed_reveal(reveal: Reveal, envelope: Envelope) -> Reveal:
    """A confidential job's reveal: each output sealed to the job key with its proof inside, proofs empty."""
    return Reveal(reveal.indices, tuple(seal_revealed(output, proof, envelope)
                                        for output, proof in zip(reveal.outputs, reveal.proofs, strict=True)),
                  tuple(() for _ in reveal.indices))
