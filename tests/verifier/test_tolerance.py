"""The allowance rule (``verifier.tolerance``) and the end-of-sequence rule, on numbers chosen by hand."""

from __future__ import annotations

import math

import pytest
import torch

from verifier import tolerance
from verifier.compare import ends_of, first_deviation, judge_tokens
from verifier.forced import Forced


@pytest.mark.parametrize(("noise", "expected"), [
    (0.0, tolerance.LOGIT_FLOOR),  # references identical: the floor
    (0.02, 0.08),  # four noises
    (0.5, tolerance.NEAR_TIE_LOGITS),  # never past the outer bound
    (math.nan, tolerance.NEAR_TIE_LOGITS),  # no measure: the outer bound, as with one reference
])
def test_the_allowance_is_four_noises_between_the_floor_and_the_outer_bound(noise: float, expected: float) -> None:
    assert tolerance.logit_allowance(noise).value == pytest.approx(expected)


def test_each_comparator_has_its_own_floor_and_outer_bound() -> None:
    assert tolerance.embed_allowance(0.0).value == tolerance.EMBED_FLOOR
    assert tolerance.embed_allowance(1.0).value == pytest.approx(1 - tolerance.EMBED_MIN_COSINE)
    assert tolerance.classify_allowance(0.0).value == tolerance.CLASSIFY_FLOOR
    assert tolerance.classify_allowance(1.0).value == tolerance.CLASSIFY_PROB_TOLERANCE


def test_a_task_whose_references_happen_to_agree_counts_the_samples_median_noise() -> None:
    assert tolerance.sample_noise([0.0, 0.01, 0.02, 0.03]) == pytest.approx(0.015)
    assert tolerance.sample_noise([math.nan]) == 0.0


def gaps(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_ending_at_a_near_tie_fails_where_the_same_gap_elsewhere_passes() -> None:
    """The cheat that stops where end-of-sequence is a near-tie (saving the rest of the tokens): its
    end token sits 0.04 logits behind the argmax, inside the floor of 0.05 that any other token gets,
    but the end decision gets only the measured noise's multiple (here 4 x 0.005)."""
    behind = gaps(0, 0, 0.04)
    allowance, end_allowance = tolerance.logit_allowance(0.005).value, tolerance.end_allowance(0.005)
    assert allowance == tolerance.LOGIT_FLOOR and end_allowance == pytest.approx(0.02)
    ended = ends_of([7, 8, 3], [7, 8, 9], stops={3})
    assert ended.tolist() == [False, False, True]
    early = judge_tokens(0, behind, allowance, ended, end_allowance)
    assert not early.passed and "end-of-sequence decision at position 2" in early.reason
    assert first_deviation(behind, allowance, ended, end_allowance) == 2
    elsewhere = judge_tokens(0, behind, allowance, ends_of([7, 8, 5], [7, 8, 9], stops={3}), end_allowance)
    assert elsewhere.passed, elsewhere.reason


def test_running_past_the_argmax_end_is_held_to_the_end_allowance_too() -> None:
    """The argmax ends the sequence and the committed token goes on: the same decision, the same rule."""
    ended = ends_of([7, 8, 5], [7, 8, 3], stops={3})
    assert ended.tolist() == [False, False, True]
    assert not judge_tokens(0, gaps(0, 0, 0.04), 0.05, ended, 0.0).passed


def forced(behind: list[float], margins: list[list[float]], probed: list[list[float]] | None = None) -> Forced:
    top = torch.tensor([[1, 2, 3]] * len(behind))
    return Forced(gaps(*behind), [1] * len(behind), top, torch.tensor(margins),
                  None if probed is None else torch.tensor(probed))


def test_the_noise_counts_only_candidates_that_could_decide_a_token() -> None:
    """A runner-up eight logits down moves by 0.2 between bf16 and fp32 without ever deciding a token;
    the noise is the 0.01 by which the close runner-up moved."""
    a = forced([0.0], [[0.0, 0.3, 8.0]])
    b = forced([0.0], [[0.0, 0.31, 8.2]], probed=[[0.0, 0.31, 8.2]])
    assert float(b.noise_against(a).max()) == pytest.approx(0.01, abs=1e-6)
    # The committed token's own margin does not count: the token being judged cannot widen its allowance.
    c = forced([0.9], [[0.0, 0.2, 8.0]])
    d = forced([1.2], [[0.0, 0.21, 8.0]], probed=[[0.0, 0.21, 8.0]])
    assert float(d.noise_against(c).max()) == pytest.approx(0.01, abs=1e-6)


def test_a_noisy_tail_does_not_widen_the_allowance_of_an_earlier_deviation() -> None:
    """The cheat's own context after its deviation is noisy (0.2 logits between the references at the
    last position): taken over the whole sequence that noise would allow 0.8 logits everywhere, and the
    cheap token 0.1 behind at position 1 would pass. A position's allowance counts only the noise at
    it and before it."""
    noise = gaps(0.0, 0.0, 0.2)
    allowed, end_allowed = tolerance.generation_allowances(noise, least=0.0)
    assert allowed.tolist() == pytest.approx([0.05, 0.05, 0.8])
    assert end_allowed.tolist() == pytest.approx([0.0, 0.0, 0.8])
    behind = gaps(0.0, 0.1, 0.0)
    assert not judge_tokens(0, behind, allowed, None, end_allowed).passed
    assert judge_tokens(0, behind, tolerance.logit_allowance(float(noise.max())).value).passed  # the old way



def test_a_nan_is_no_near_tie_and_no_agreement() -> None:
    """An fp16 reference that overflowed gives NaN logits: nothing committed may pass against them, and
    two references one of which is NaN do not agree."""
    from verifier.compare import reference_gap

    behind = gaps(0.0, math.nan, 0.0)
    assert not judge_tokens(0, behind).passed
    assert first_deviation(behind) == 1
    assert not reference_gap(0, gaps(0.0, math.nan)).passed


def test_after_a_nan_noise_the_end_decision_gets_no_allowance() -> None:
    allowed, end_allowed = tolerance.generation_allowances(gaps(0.001, math.nan, 0.001, 0.001), least=0.0)
    assert end_allowed.tolist() == pytest.approx([0.004, 0.0, 0.0, 0.0])
    assert allowed.tolist()[1:] == pytest.approx([1.0, 1.0, 1.0])


def test_no_noise_counts_as_less_than_one_step_of_the_coarser_dtype() -> None:
    """The references agreed to 0.003 logits by chance where the argmax logit is about 6: one bf16 step
    there is 2**-7 * 4 = 0.031, by which an honest provider's rounding may flip an end-of-sequence
    near-tie. Half a step is the least noise, so the end allowance is two steps."""
    from verifier.forced import resolution

    a = Forced(gaps(0.031), [1], torch.tensor([[1, 2, 3]]), torch.tensor([[0.0, 0.031, 8.0]]), None, gaps(6.0))
    b = Forced(gaps(0.034), [1], torch.tensor([[1, 2, 3]]), torch.tensor([[0.0, 0.034, 8.0]]),
               torch.tensor([[0.0, 0.034, 8.0]]), gaps(6.1))
    step = resolution(a, b, torch.bfloat16)
    assert step.tolist() == pytest.approx([2**-7 * 4 / 2])
    noise = torch.maximum(b.noise_against(a), step)
    _, end_allowed = tolerance.generation_allowances(noise, least=0.0)
    assert judge_tokens(0, gaps(0.031), 0.05, torch.tensor([True]), end_allowed).passed
    assert not judge_tokens(0, gaps(0.2), 0.05, torch.tensor([True]), end_allowed).passed


def test_a_label_flip_inside_the_allowance_passes() -> None:
    """The top two 0.017 apart, each probability within the 0.01 allowance: rounding may swap them."""
    from verifier.compare import TaskType, compare_pair

    labels = {0: "negative", 1: "neutral", 2: "positive"}
    mine = {"label": "negative", "label_id": 0, "probabilities": [0.506, 0.489, 0.005]}
    flipped = {"label": "neutral", "label_id": 1, "probabilities": [0.497, 0.498, 0.005]}
    assert compare_pair(TaskType.CLASSIFY, 0, flipped, mine, labels, 0.01).passed
    assert not compare_pair(TaskType.CLASSIFY, 0, flipped, mine, labels, 0.004).passed
