"""Is a committed output what the model gives? One comparator per task type, tolerant of honest noise.

Floating point differs across GPUs, dtypes and batch compositions, so an honest provider's numbers
never match the verifier's bit for bit; a cheat's are far off. The thresholds sit between the two,
with margin on both sides (``scripts/bench_verify.py`` measures both: the honest false-positive
rate with the provider in fp32 and the verifier in bf16, and detection of each cheat):

- ``embed``: cosine similarity of the committed and recomputed vectors >= ``EMBED_MIN_COSINE``
  (0.99). bf16 against fp32 stays above 0.999 on the test models and MiniLM; another model's
  vectors or random unit vectors land far below 0.9.
- ``classify``: the same label, unless the verifier's top two are within ``CLASSIFY_PROB_TOLERANCE``
  (0.05) of each other (a near-tie that rounding may flip), and every probability within that
  tolerance. bf16 moves probabilities by about 0.01 at most (0.0002 on MiniLM, 0.01 on the tiny
  test classifier).
- ``generate`` / ``summarize``: no re-generation. One teacher-forced forward pass over the prompt
  and the committed tokens gives the verifier's logits at every position; each committed token must
  be the verifier's argmax, or within ``NEAR_TIE_LOGITS`` (1.0) of its logit, and at most
  ``NEAR_TIE_BUDGET`` (10 %, at least ``NEAR_TIE_FLOOR`` = 2) of the tokens may be such near-ties.
  Calibration (bench_verify.py, 1,280 honest tasks, fp32 provider at batch size 1 against a bf16
  verifier, random GPT-2 and T5 models, which are more sensitive to bf16 than trained ones): honest
  tokens came at most 0.66 logits behind the verifier's argmax (T5, initializer factor 1.5; a GPT-2
  with a 0.5 initialization reached 1.66 in one task, the test models now use 0.3 and stay within
  0.16), and one 8-token output had two near-ties (hence the floor of 2). 1.0 logit leaves a margin.
  Wrong tokens from the cheats sit several logits behind. The sequence must also end where greedy
  decoding ends: with the end-of-sequence token, or at ``max_new_tokens``.

What a pass promises: the committed answer is within these tolerances of the verifier's own
computation. An answer that lands within them however it was produced (a classify output borrowed
from a similar sentence, a generation that differs from greedy decoding only by allowed near-ties)
is a right answer by that promise; a cheat is caught when its answer falls outside it.

The same comparators judge whether the verifier's two references agree (``verifier.verdict``):
``compare_pair`` compares two recomputed outputs, and ``teacher_forced`` also measures how far one
reference's argmax tokens are behind the other's (``reference_gap``).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from marketplace.jobspec import JobSpec, TaskType
from provider.runtime import LoadedModel, Runtime

EMBED_MIN_COSINE = 0.99
CLASSIFY_PROB_TOLERANCE = 0.05
NEAR_TIE_LOGITS = 1.0
NEAR_TIE_BUDGET = 0.10
NEAR_TIE_FLOOR = 2


@dataclass(frozen=True)
class TaskCheck:
    """The verdict on one task, with what was measured: the evidence document lists these."""

    index: int
    passed: bool
    reason: str
    metric: float | None = None
    # Refused on its form (not JSON, wrong shape, tokens past the end): no reference makes it right.
    malformed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_committed(index: int, raw: bytes) -> dict[str, Any] | TaskCheck:
    """A committed output as a JSON object, or the refusal of it."""
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return value
    except ValueError as error:
        return TaskCheck(index, False, f"committed output is not canonical JSON ({error})", malformed=True)


def compare_pair(task: TaskType, index: int, theirs: dict[str, Any], mine: dict[str, Any],
                 labels: dict[int, str]) -> TaskCheck:
    """``theirs`` (a committed output, or one reference) against ``mine`` (a recomputed one), for
    ``embed`` and ``classify``: the tolerance is the same whoever produced ``theirs``."""
    if task == TaskType.EMBED:
        return _embed(index, theirs, mine)
    return _classify(index, theirs, mine, labels)


def check_tasks(runtime: Runtime, spec: JobSpec, inputs: list[str], indices: list[int],
                committed: dict[int, bytes]) -> list[TaskCheck]:
    """Re-executes (or teacher-forces) the tasks at ``indices`` and compares with ``committed``."""
    parsed: dict[int, dict[str, Any]] = {}
    checks: dict[int, TaskCheck] = {}
    for index in indices:
        value = parse_committed(index, committed[index])
        if isinstance(value, TaskCheck):
            checks[index] = value
        else:
            parsed[index] = value
    todo = [index for index in indices if index in parsed]
    if spec.task in (TaskType.EMBED, TaskType.CLASSIFY):
        recomputed = runtime.run(spec, inputs, indices=todo) if todo else []
        labels = runtime.load(spec, runtime.devices[0]).model.config.id2label
        for index, mine in zip(todo, recomputed, strict=True):
            checks[index] = compare_pair(spec.task, index, parsed[index], json.loads(mine), labels)
    else:
        checks.update(_teacher_forced_all(runtime.load(spec, runtime.devices[0]), spec, todo, inputs, parsed))
    return [checks[index] for index in indices]


def _embed(index: int, theirs: dict[str, Any], mine: dict[str, Any]) -> TaskCheck:
    vector = theirs.get("embedding")
    if not isinstance(vector, list) or len(vector) != len(mine["embedding"]):
        return TaskCheck(index, False, "embedding missing or of the wrong dimension", malformed=True)
    try:
        a = torch.tensor(vector, dtype=torch.float64)
    except (TypeError, ValueError):
        return TaskCheck(index, False, "embedding is not a list of numbers", malformed=True)
    b = torch.tensor(mine["embedding"], dtype=torch.float64)
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    if math.isnan(cosine) or cosine < EMBED_MIN_COSINE:
        return TaskCheck(index, False, f"cosine {cosine:.4f} < {EMBED_MIN_COSINE}", cosine)
    return TaskCheck(index, True, "cosine within tolerance", cosine)


def _classify(index: int, theirs: dict[str, Any], mine: dict[str, Any], labels: dict[int, str]) -> TaskCheck:
    probabilities = theirs.get("probabilities")
    expected = mine["probabilities"]
    if not isinstance(probabilities, list) or len(probabilities) != len(expected):
        return TaskCheck(index, False, "probabilities missing or of the wrong length", malformed=True)
    try:
        gap = max(abs(float(p) - q) for p, q in zip(probabilities, expected, strict=True))
    except (TypeError, ValueError):
        return TaskCheck(index, False, "probabilities are not numbers", malformed=True)
    ranked = sorted(expected, reverse=True)
    near_tie = len(ranked) > 1 and ranked[0] - ranked[1] < CLASSIFY_PROB_TOLERANCE
    label_id = theirs.get("label_id")
    if not isinstance(label_id, int) or label_id not in range(len(expected)) \
            or theirs.get("label") != str(labels.get(label_id, label_id)):
        return TaskCheck(index, False, f"label {theirs.get('label')!r} does not name class {label_id!r}", gap,
                         malformed=True)
    if label_id != mine["label_id"] and not near_tie:
        return TaskCheck(index, False, f"label {theirs.get('label')!r}, recomputed {mine['label']!r}", gap)
    if gap > CLASSIFY_PROB_TOLERANCE:
        return TaskCheck(index, False, f"probabilities differ by {gap:.4f} > {CLASSIFY_PROB_TOLERANCE}", gap)
    return TaskCheck(index, True, "label and probabilities within tolerance", gap)


def check_shape(loaded: LoadedModel, spec: JobSpec, index: int, theirs: dict[str, Any]) -> TaskCheck | None:
    """What can be refused without the model: malformed tokens, wrong length, text that is not theirs."""
    tokens = theirs.get("tokens")
    limit = spec.parameters.max_new_tokens
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, int) for t in tokens):
        return TaskCheck(index, False, "tokens missing or not integers", malformed=True)
    vocabulary = loaded.model.get_output_embeddings().weight.shape[0]
    if len(tokens) > limit or any(not 0 <= t < vocabulary for t in tokens):
        return TaskCheck(index, False, f"{len(tokens)} tokens for max_new_tokens {limit}, or ids out of range",
                         malformed=True)
    eos = loaded.model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos]) - {None}
    if any(token in stops for token in tokens[:-1]):
        return TaskCheck(index, False, "tokens continue after the end-of-sequence token", malformed=True)
    if len(tokens) < limit and tokens[-1] not in stops:
        return TaskCheck(index, False, f"stopped after {len(tokens)} of {limit} tokens without end-of-sequence",
                         malformed=True)
    if theirs.get("text") != loaded.tokenizer.decode(tokens, skip_special_tokens=True):
        return TaskCheck(index, False, "text does not decode from the tokens", malformed=True)
    return None


def near_tie_budget(length: int) -> int:
    """How many of ``length`` committed tokens may be near-ties rather than the argmax."""
    return max(NEAR_TIE_FLOOR, int(NEAR_TIE_BUDGET * length))


def _teacher_forced_all(loaded: LoadedModel, spec: JobSpec, todo: list[int], inputs: list[str],
                        parsed: dict[int, dict[str, Any]], batch: int = 32) -> dict[int, TaskCheck]:
    checks: dict[int, TaskCheck] = {}
    ready = []
    for index in todo:
        refused = check_shape(loaded, spec, index, parsed[index])
        if refused is None:
            ready.append(index)
        else:
            checks[index] = refused
    for start in range(0, len(ready), batch):
        group = ready[start:start + batch]
        gaps = token_gaps(loaded, spec, [inputs[i] for i in group], [parsed[i]["tokens"] for i in group])
        for index, behind in zip(group, gaps, strict=True):
            checks[index] = judge_tokens(index, behind)
    return checks


def judge_tokens(index: int, behind: torch.Tensor) -> TaskCheck:
    mismatched = int((behind > 0).sum())
    worst = float(behind.max())
    budget = near_tie_budget(len(behind))
    if worst > NEAR_TIE_LOGITS:
        return TaskCheck(index, False, f"a token is {worst:.2f} logits behind the argmax (> {NEAR_TIE_LOGITS})", worst)
    if mismatched > budget:
        return TaskCheck(index, False, f"{mismatched} near-tie tokens, over the budget of {budget}", worst)
    return TaskCheck(index, True, f"every token the argmax or within {NEAR_TIE_LOGITS} logits", worst)


def first_deviation(behind: torch.Tensor) -> int | None:
    """The first position at which a committed sequence leaves one reference's allowance (a token more
    than ``NEAR_TIE_LOGITS`` behind its argmax, or the near-tie that goes over the budget of the whole
    length), or ``None`` where it stays within: ``judge_tokens`` fails exactly when this is not ``None``."""
    budget = near_tie_budget(len(behind))
    ties = 0
    for position, gap in enumerate(behind.tolist()):
        if gap > NEAR_TIE_LOGITS:
            return position
        if gap > 0:
            ties += 1
            if ties > budget:
                return position
    return None


def within_spread(task: TaskType, theirs: dict[str, Any], a: dict[str, Any], b: dict[str, Any],
                  against_a: TaskCheck, against_b: TaskCheck, references: TaskCheck) -> bool:
    """Whether a committed ``embed``/``classify`` output lies among two references that disagree: within
    (distance(A, B) + tolerance) of both, the distance being 1 - cosine for ``embed`` and the largest
    probability gap for ``classify`` (whose label must then be one a reference gives). An output outside
    both references and outside that spread is wrong however unstable the model: the references'
    disagreement cannot excuse it."""
    to_a, to_b, apart = against_a.metric, against_b.metric, references.metric
    if to_a is None or to_b is None or apart is None:
        return False
    if task == TaskType.EMBED:
        tolerance = 1.0 - EMBED_MIN_COSINE
        return 1.0 - to_a <= (1.0 - apart) + tolerance and 1.0 - to_b <= (1.0 - apart) + tolerance
    if theirs.get("label_id") not in (a.get("label_id"), b.get("label_id")):
        return False
    return to_a <= apart + CLASSIFY_PROB_TOLERANCE and to_b <= apart + CLASSIFY_PROB_TOLERANCE


def reference_gap(index: int, behind: torch.Tensor) -> TaskCheck:
    """Whether two references agree along a committed sequence: ``behind`` is how far the first
    reference's argmax is behind the second's at each position, in the second's logits. Within
    ``NEAR_TIE_LOGITS`` everywhere, each reference's choice is a near-tie of the other's."""
    worst = float(behind.max()) if len(behind) else 0.0
    if worst > NEAR_TIE_LOGITS:
        return TaskCheck(index, False, f"the references' argmax tokens are {worst:.2f} logits apart "
                                       f"(> {NEAR_TIE_LOGITS})", worst)
    return TaskCheck(index, True, f"the references' argmax tokens are within {NEAR_TIE_LOGITS} logits", worst)


@dataclass
class Forced:
    """One task's teacher-forced pass: how far each committed token is behind the argmax (``behind``),
    the argmax token at each position, and how far the ``also`` tokens asked for are behind it."""

    behind: torch.Tensor
    argmax: list[int]
    also_behind: torch.Tensor | None = field(default=None)


@torch.inference_mode()
def token_gaps(loaded: LoadedModel, spec: JobSpec, texts: list[str], tokens: list[list[int]]) -> list[torch.Tensor]:
    """How far behind the model's argmax each committed token is, in logits (0 where it is the
    argmax), as a float32 CPU tensor per task (``teacher_forced``'s ``behind``)."""
    return [forced.behind for forced in teacher_forced(loaded, spec, texts, tokens)]


@torch.inference_mode()
def teacher_forced(loaded: LoadedModel, spec: JobSpec, texts: list[str], tokens: list[list[int]],
                   also: list[list[int]] | None = None) -> list[Forced]:
    """One right-padded, teacher-forced forward pass for the batch (padding on the right leaves every
    real position's attention and position id unchanged): per task, how far behind the model's argmax
    each committed token is, in logits (0 where it is the argmax), as a float32 CPU tensor, the argmax
    tokens, and (with ``also``: one token list per task, as long as its committed tokens) how far those
    tokens are behind (another reference's argmax, to see whether two references agree).

    Only the two numbers per position that the comparison needs leave the model's dtype: a float copy
    of the whole logits tensor would be batch x length x vocabulary x 4 bytes (gigabytes for a
    128k-token vocabulary), and decoder-only models skip the vocabulary projection of all prompt
    positions but the last (``logits_to_keep``)."""
    model, device = loaded.model, loaded.device
    pad = loaded.tokenizer.pad_token_id or 0
    prompts = [loaded.tokenizer(text, truncation=True, max_length=spec.parameters.max_input_tokens)["input_ids"]
               for text in texts]
    if spec.task == TaskType.SUMMARIZE:
        start = model.config.decoder_start_token_id
        encoder, encoder_mask = _right_padded(prompts, pad, device)
        decoder, decoder_mask = _right_padded([[start, *committed[:-1]] for committed in tokens], pad, device)
        logits = model(input_ids=encoder, attention_mask=encoder_mask, decoder_input_ids=decoder,
                       decoder_attention_mask=decoder_mask).logits
        first = [0] * len(tokens)
    else:
        rows = [[*prompt, *committed[:-1]] for prompt, committed in zip(prompts, tokens, strict=True)]
        ids, mask = _right_padded(rows, pad, device)
        skipped = min(len(prompt) for prompt in prompts) - 1
        if "logits_to_keep" in inspect.signature(model.forward).parameters:
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=ids.shape[1] - skipped).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits[:, skipped:]
        first = [len(prompt) - 1 - skipped for prompt in prompts]
    forced = []
    for row, (begin, committed) in enumerate(zip(first, tokens, strict=True)):
        scores = logits[row, begin:begin + len(committed)]
        best = scores.max(dim=1)
        chosen = scores.gather(1, torch.tensor(committed, device=device).unsqueeze(1)).squeeze(1)
        other = None
        if also is not None:
            picked = scores.gather(1, torch.tensor(also[row], device=device).unsqueeze(1)).squeeze(1)
            other = (best.values.float() - picked.float()).cpu()
        forced.append(Forced((best.values.float() - chosen.float()).cpu(), best.indices.cpu().tolist(), other))
    return forced


def _right_padded(rows: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for number, row in enumerate(rows):
        ids[number, :len(row)] = torch.tensor(row)
        mask[number, :len(row)] = 1
    return ids.to(device), mask.to(device)
