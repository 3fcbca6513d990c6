"""How far a committed output may be from the verifier's: a multiple of the noise it measures, with a floor.

Honest hardware differs from the verifier by floating-point noise, and that noise depends on the model
and the input: bf16 against fp32 moves a trained MiniLM's embeddings by 1e-5 to 1e-4 in 1 - cosine,
a random tiny model's by 1e-3; a confident classifier's probabilities by 1e-6, an undecided one's by
1e-2. A fixed tolerance wide enough for the noisiest model is a hundred times what a quiet one needs,
and cheap cheats live in that room. So the verifier's two references (``verifier.verdict``: its own
dtype batched, the other dtype one task at a time) measure the noise on each sampled input, and the
allowance is::

    allowance = min(outer, max(floor, NOISE_MULTIPLE * noise))

- ``noise``: the distance between the two references on this task, or its median over the sample
  where that is larger: on one input the references may happen to agree closely, and an honest
  provider, whose rounding is independent of theirs, must not be left without room (a tiny
  classifier's bf16 provider at batch 32 came 5 task-noises from both references on one of 200
  inputs, 1.4 sample medians);
- ``NOISE_MULTIPLE`` (4): an honest provider's distance to the nearer reference is about one noise
  (its rounding against theirs); four leaves room for a third kind of hardware;
- ``floor``: below it, differences are rounding of the 7-decimal outputs and fp32 kernel noise;
- ``outer``: the fixed bound of old (cosine 0.99, probabilities 0.05, 1.0 logit). References further
  apart than it make the task inconclusive (the model is unstable), and no allowance exceeds it.

For generation the noise is per sequence: the largest disagreement, over its positions, between the
references' margins among their top candidates (``verifier.forced.Forced.noise_against``). The
end-of-sequence decision gets no floor: ending where neither reference ends (or running on where both
end) is allowed only within the measured noise, so that stopping at a near-tie to save the rest of
the tokens fails.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

NOISE_MULTIPLE = 4.0
SAMPLE_NOISE_SHARE = 1.0

# The fixed outer bounds.
EMBED_MIN_COSINE = 0.99
CLASSIFY_PROB_TOLERANCE = 0.05
NEAR_TIE_LOGITS = 1.0
# At most this share of a sequence's tokens (and at least NEAR_TIE_FLOOR) may be near-ties, not
# the argmax of the reference they are judged against: end-of-sequence decisions included.
NEAR_TIE_BUDGET = 0.10
NEAR_TIE_FLOOR = 2

# The floors, in each comparator's unit.
EMBED_FLOOR = 2e-5  # 1 - cosine
CLASSIFY_FLOOR = 5e-4  # largest probability difference
LOGIT_FLOOR = 0.05  # logits behind the argmax


@dataclass(frozen=True)
class Allowance:
    """One task's allowance and what it was scaled from, for the evidence document."""

    value: float
    noise: float
    floor: float
    outer: float

    def as_dict(self) -> dict[str, float]:
        return {"allowance": self.value, "noise": self.noise, "floor": self.floor, "outer": self.outer}


def allowance(noise: float, floor: float, outer: float) -> Allowance:
    """``min(outer, max(floor, NOISE_MULTIPLE * noise))``; a NaN noise (never from finite references)
    counts as the outer bound."""
    if noise != noise:  # NaN
        return Allowance(outer, noise, floor, outer)
    return Allowance(min(outer, max(floor, NOISE_MULTIPLE * noise)), noise, floor, outer)


def embed_allowance(noise: float) -> Allowance:
    return allowance(noise, EMBED_FLOOR, 1.0 - EMBED_MIN_COSINE)


def classify_allowance(noise: float) -> Allowance:
    return allowance(noise, CLASSIFY_FLOOR, CLASSIFY_PROB_TOLERANCE)


def logit_allowance(noise: float) -> Allowance:
    return allowance(noise, LOGIT_FLOOR, NEAR_TIE_LOGITS)


def end_allowance(noise: float) -> float:
    """The end-of-sequence decision's allowance: the measured noise's multiple, with no floor."""
    return min(NEAR_TIE_LOGITS, NOISE_MULTIPLE * noise) if noise == noise else 0.0


def sample_noise(per_task: Sequence[float]) -> float:
    """The least any task's noise counts as: ``SAMPLE_NOISE_SHARE`` of the sample's median."""
    finite = [value for value in per_task if value == value]
    return SAMPLE_NOISE_SHARE * statistics.median(finite) if finite else 0.0


def near_tie_budget(length: int) -> int:
    """How many of ``length`` committed tokens may be near-ties rather than the argmax."""
    return max(NEAR_TIE_FLOOR, int(NEAR_TIE_BUDGET * length))


def generation_allowances(noise: torch.Tensor, least: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position, a sequence's token allowance and end-of-sequence allowance, from its per-position
    ``noise``: ``NOISE_MULTIPLE`` times the largest noise at or before the position (at least
    ``least``, the sample's), between ``LOGIT_FLOOR`` (none for the end decision) and the outer bound.
    A NaN noise counts as the outer bound for tokens and, from there on, 0 for the end decision."""
    if not len(noise):
        return noise.clone(), noise.clone()
    finite = torch.nan_to_num(noise, nan=NEAR_TIE_LOGITS / NOISE_MULTIPLE)
    scaled = NOISE_MULTIPLE * torch.clamp(torch.cummax(finite, dim=0).values, min=least)
    tokens = torch.clamp(scaled, min=LOGIT_FLOOR, max=NEAR_TIE_LOGITS)
    unknown = torch.cummax(torch.isnan(noise).to(torch.uint8), dim=0).values.bool()  # from the first NaN on
    ends = torch.where(unknown, torch.zeros_like(scaled), torch.clamp(scaled, max=NEAR_TIE_LOGITS))
    return tokens, ends

