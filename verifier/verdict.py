"""The protocol's verdict rule, from two references: pass, fail, or inconclusive when the model is unstable.

An honest provider's numbers differ from the verifier's by floating-point noise (another GPU,
dtype, batch composition); ``verifier.compare`` tolerates that noise. Some models amplify it: a
chaotic one gives outputs in bf16 that differ from fp32 by more than any tolerance, and then no
comparison with one reference can tell an honest provider from a cheat. So the verifier computes
two references per sampled task, and the tolerance is first applied between them:

- reference A: the verifier's runtime in its own dtype, all sampled tasks in one batch;
- reference B: the other dtype (bf16 where A is fp32, as on a CPU; fp32 where A is bf16 or fp16),
  each task in a batch of its own: B differs from A in dtype and in batch composition always, so an
  instability that would make an fp32 verifier fail an honest bf16 provider shows as a disagreement.

Per task: refused on its form (not JSON, wrong shape, not under the committed root) -> fail;
else within the tolerance of a reference while the references agree -> pass; outside both while
they agree -> fail. Where the references disagree, inconclusive (the model is unstable, the provider
is not at fault) only if the provider could be honest: for embed/classify, within the tolerance of
one reference, or within (distance(A, B) + tolerance) of both; for generation, the references
already disagreed at or before the first position where the provider's tokens left both references'
allowance (disagreements after it do not count: garbage must not choose its own context). Else fail:
an unstable model never excuses an answer that is far from every reference. The job: any task
failed -> ``Verdict.FAIL``; else any inconclusive -> ``Verdict.INCONCLUSIVE`` (the provider is paid,
nobody is slashed); else ``Verdict.PASS``.

``References.judge_sample`` is the one path from a sample's outputs (``verifier.outputs``) to its
judgement, for the drawn verifier's audit, a panel member's vote and a watchtower's re-check alike:
the requester's malformed spec or inputs excuse every task (a spec or inputs not found are retried:
that may be transient), outputs found nowhere leave every task unjudged (inconclusive, and not
conclusive), an output refused on its form fails, the rest are judged by the rule above. So a panel
member votes inconclusive exactly where an audit would.
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, replace
from typing import Any

import torch

from marketplace.errors import CidError, ContentTooLargeError, JobSpecError, ModelError
from marketplace.jobspec import JobSpec, TaskType
from marketplace.protocol import Verdict
from marketplace.storage import ContentStore
from provider.runtime import Runtime
from verifier import compare, tolerance
from verifier.forced import Forced, resolution, teacher_forced
from verifier.outputs import SampledOutputs

RULE = ("per task: malformed or unproven -> fail; references agree: within the tolerance of either -> pass, "
        "else fail; references disagree: within the tolerance of either or within their spread (generation: "
        "they disagreed at or before the provider's first deviation from both) -> inconclusive, else fail. "
        "Job: any fail -> fail; else any inconclusive -> inconclusive; else pass")


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class TaskAudit:
    """One sampled task's outcome and what it rests on: the provider against each reference, and
    the references against each other (``None`` where the task was refused before any ran)."""

    index: int
    outcome: Outcome
    reason: str
    against_a: compare.TaskCheck
    against_b: compare.TaskCheck | None = None
    references: compare.TaskCheck | None = None

    @classmethod
    def refused(cls, index: int, reason: str) -> TaskAudit:
        """A task failed on its form, with no re-execution (e.g. its output is not under the root)."""
        return cls(index, Outcome.FAIL, reason, compare.TaskCheck(index, False, reason, malformed=True))

    @classmethod
    def unjudged(cls, index: int, reason: str) -> TaskAudit:
        """A task nobody can judge: a re-check found its output neither in the store nor on-chain. It
        blames nobody (inconclusive); ``SampleAudit.conclusive`` is false, so it contradicts nothing."""
        return cls(index, Outcome.INCONCLUSIVE, reason, compare.TaskCheck(index, False, reason))

    @classmethod
    def excused(cls, index: int, reason: str) -> TaskAudit:
        """A task passed without re-execution: the requester's own inputs are unusable."""
        return cls(index, Outcome.PASS, reason, compare.TaskCheck(index, True, reason))

    def as_dict(self) -> dict[str, Any]:
        """The evidence entry: ``passed`` and ``metric`` as before (against reference A), plus the rest."""
        return {"index": self.index, "outcome": self.outcome.value, "passed": self.outcome is Outcome.PASS,
                "reason": self.reason, "metric": self.against_a.metric,
                "provider_vs_a": _summary(self.against_a), "provider_vs_b": _summary(self.against_b),
                "a_vs_b": _summary(self.references)}


def _summary(check: compare.TaskCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {"within": check.passed, "metric": check.metric, "allowance": check.allowance, "reason": check.reason}


def judge(index: int, against_a: compare.TaskCheck, against_b: compare.TaskCheck,
          references: compare.TaskCheck, *, spread: bool = False) -> TaskAudit:
    """The rule for one task (see the module docstring). ``spread``: the provider, outside both
    references, still lies where their disagreement reaches (``compare.within_spread``; for generation,
    ``references`` is already measured only up to the provider's first deviation, and ``spread`` is
    true). An inconclusive never outranks a fail: the disagreement excuses only answers it explains."""
    if against_a.malformed or against_b.malformed:
        reason = against_a.reason if against_a.malformed else against_b.reason
        return TaskAudit(index, Outcome.FAIL, reason, against_a, against_b, references)
    within = against_a.passed or against_b.passed
    if references.passed:
        if within:
            return TaskAudit(index, Outcome.PASS, against_a.reason if against_a.passed else against_b.reason,
                             against_a, against_b, references)
        return TaskAudit(index, Outcome.FAIL, f"outside both references: {against_a.reason}; {against_b.reason}",
                         against_a, against_b, references)
    if within or spread:
        return TaskAudit(index, Outcome.INCONCLUSIVE, f"unstable model: {references.reason}", against_a,
                         against_b, references)
    return TaskAudit(index, Outcome.FAIL, f"outside both references and their spread ({references.reason}): "
                                          f"{against_a.reason}; {against_b.reason}", against_a, against_b, references)


def judge_generation(index: int, behind_a: torch.Tensor, behind_b: torch.Tensor, apart: torch.Tensor,
                     allowance: float | torch.Tensor = compare.NEAR_TIE_LOGITS,
                     ends: tuple[torch.Tensor, torch.Tensor] | None = None,
                     end_allowance: float | torch.Tensor = compare.NEAR_TIE_LOGITS) -> TaskAudit:
    """The rule for one generation task: ``behind_a``/``behind_b`` are how far each committed token is
    behind each reference's argmax, ``apart`` how far A's argmax is behind B's, per position;
    ``allowance`` and ``end_allowance`` the sequence's, per position or one for all
    (``verifier.tolerance.generation_allowances``), ``ends`` where each
    reference sees the end-of-sequence decision at stake. The provider is outside both references
    from the position where the later of its two deviations happens (``compare.first_deviation``);
    only the references' disagreements up to there count: past it the context is the provider's own
    tokens, and garbage must not pick a context the references happen to disagree on."""
    end_a, end_b = ends if ends is not None else (None, None)
    left_a = compare.first_deviation(behind_a, allowance, end_a, end_allowance)
    left_b = compare.first_deviation(behind_b, allowance, end_b, end_allowance)
    horizon = len(apart) if left_a is None or left_b is None else max(left_a, left_b) + 1
    return judge(index, compare.judge_tokens(index, behind_a, allowance, end_a, end_allowance),
                 compare.judge_tokens(index, behind_b, allowance, end_b, end_allowance),
                 compare.reference_gap(index, apart[:horizon]), spread=True)


def verdict_of(tasks: list[TaskAudit]) -> Verdict:
    if any(task.outcome is Outcome.FAIL for task in tasks):
        return Verdict.FAIL
    if any(task.outcome is Outcome.INCONCLUSIVE for task in tasks):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


@dataclass(frozen=True)
class SampleAudit:
    """A sample judged by the rule: each task's outcome, where the outputs came from, and, when the
    requester's spec or inputs could not be read, why (then every task is excused)."""

    sampled: list[int]
    tasks: list[TaskAudit]
    outputs_source: str  # ``SampledOutputs.source``
    inputs_unusable: str = ""

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.tasks)

    @property
    def conclusive(self) -> bool:
        """Whether the answer rests on what the provider committed (outputs compared, or refused on their
        form), not on outputs missing on our side or inputs that excuse everything: only such an answer
        may contradict another verifier's verdict (``verifier.watchtower.contradicts``)."""
        return self.outputs_source != "unavailable" and not self.inputs_unusable


@dataclass
class References:
    """The verifier's two reference runtimes (A: its own; B: the other dtype, one task per batch).

    ``device_lock`` makes re-execution take the device one audit at a time: audits run on several
    threads (their fetches, proofs and transactions overlap), but one GPU gains nothing from two
    models at once, and a fast tokenizer must not be used by two threads together."""

    a: Runtime
    b: Runtime
    device_lock: threading.Lock
    # B's dtype batched as A is: only to measure the noise batching adds in that dtype (embed/classify).
    b_batched: Runtime | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> References:
        """A is ``runtime``; B shares its store and model cache, in the other dtype (``other_dtype``)."""
        other = other_dtype(runtime.dtype_for(runtime.devices[0]))
        second = Runtime(runtime.store, runtime.cache, devices=runtime.devices, dtype=other,
                         limits=replace(runtime.limits, max_batch_rows=1))
        batched = Runtime(runtime.store, runtime.cache, devices=runtime.devices, dtype=other, limits=runtime.limits)
        return cls(runtime, second, threading.Lock(), batched)

    def over(self, store: ContentStore) -> References:
        """The same references (devices, dtypes, limits, model cache, device lock) reading ``store``: a
        confidential job is judged over a private store holding its opened content (``verifier.confidential``)."""
        def copy(runtime: Runtime) -> Runtime:
            return Runtime(store, runtime.cache, devices=runtime.devices, dtype=runtime.dtype_for(runtime.devices[0]),
                           limits=runtime.limits)

        return References(copy(self.a), copy(self.b), self.device_lock,
                          None if self.b_batched is None else copy(self.b_batched))

    def describe(self) -> dict[str, Any]:
        device = self.a.devices[0]
        return {"a": {"dtype": _dtype(self.a, device), "batch": "all sampled tasks together"},
                "b": {"dtype": _dtype(self.b, device), "batch": "one task at a time"}}

    def judge_sample(self, spec_cid: str, sampled: list[int], found: SampledOutputs) -> SampleAudit:
        """Judges the ``sampled`` tasks of the job whose spec is ``spec_cid`` from ``found`` (proven or
        refused outputs): read the spec and inputs, re-execute the proven tasks under both references.
        Outputs unavailable everywhere leave every task unjudged (``TaskAudit.unjudged``)."""
        if not found.available:
            return SampleAudit(sampled, [TaskAudit.unjudged(index, found.missing) for index in sampled], found.source)
        try:
            spec = self.a.read_spec(spec_cid)
            inputs = self.a.read_inputs(spec)
            self.a.check_job(spec)  # parameters the model cannot take (its position table): theirs too
        except (JobSpecError, ModelError, ContentTooLargeError, CidError) as error:
            # The requester's own inputs are malformed: nothing the provider could have done right. (A spec
            # or inputs the store cannot find is no such proof: ``ContentNotFoundError`` propagates and the
            # caller retries, as for any fetch that may be transient.)
            reason = f"job inputs unusable ({error}); provider not at fault"
            return SampleAudit(sampled, [TaskAudit.excused(index, reason) for index in sampled], found.source,
                               str(error))
        proven = [index for index in sampled if index in found.outputs]
        judged = {task.index: task for task in self.audit(spec, inputs, proven, found.outputs)} if proven else {}
        judged |= {index: TaskAudit.refused(index, reason) for index, reason in found.refused.items()}
        return SampleAudit(sampled, [judged[index] for index in sampled], found.source)

    def audit(self, spec: JobSpec, inputs: list[str], indices: list[int],
              committed: dict[int, bytes]) -> list[TaskAudit]:
        """Re-executes (or teacher-forces) the tasks at ``indices`` under both references and judges
        each committed output by the rule."""
        parsed: dict[int, dict[str, Any]] = {}
        done: dict[int, TaskAudit] = {}
        for index in indices:
            value = compare.parse_committed(index, committed[index])
            if isinstance(value, compare.TaskCheck):
                done[index] = TaskAudit(index, Outcome.FAIL, value.reason, value)
            else:
                parsed[index] = value
        todo = [index for index in indices if index in parsed]
        with self.device_lock:
            if todo and spec.task in (TaskType.EMBED, TaskType.CLASSIFY):
                done.update(self._recomputed(spec, inputs, todo, parsed))
            elif todo:
                done.update(self._forced(spec, inputs, todo, parsed))
        return [done[index] for index in indices]

    def _recomputed(self, spec: JobSpec, inputs: list[str], todo: list[int],
                    parsed: dict[int, dict[str, Any]]) -> dict[int, TaskAudit]:
        """embed/classify: both references recomputed; their distance on each task is its noise (and, in
        B's dtype, the distance between B alone and B batched: bf16 batching moved a tiny classifier's
        probabilities 15 times further than bf16 against fp32 did), and the provider must lie within
        that noise's allowance (``verifier.tolerance``) of one of them. A reference that cannot give a
        finite answer (fp16 overflowing) is replaced by the other, held to the outer bound."""
        first, second = _answers(self.a, spec, inputs, todo), _answers(self.b, spec, inputs, todo)
        third = _answers(self.b_batched, spec, inputs, todo) if self.b_batched is not None else None
        if first is None and second is None:
            raise ModelError(f"model {spec.model} gives no finite output in either reference's dtype")
        unmeasured = first is None or second is None
        first, second = first or second, second or first
        assert first is not None and second is not None
        labels = self.a.load(spec, self.a.devices[0]).model.config.id2label
        apart = [compare.compare_pair(spec.task, index, a, b, labels) for index, a, b in zip(todo, first, second,
                                                                                             strict=True)]
        noises = [_distance(spec.task, check) for check in apart]
        if third is not None:
            batching = [_distance(spec.task, compare.compare_pair(spec.task, index, b, c, labels))
                        for index, b, c in zip(todo, second, third, strict=True)]
            noises = [max(n, m) for n, m in zip(noises, batching, strict=True)]
        least = tolerance.sample_noise(noises)
        scale = tolerance.embed_allowance if spec.task == TaskType.EMBED else tolerance.classify_allowance
        judged = {}
        for index, a, b, references, noise in zip(todo, first, second, apart, noises, strict=True):
            allowed = scale(float("nan") if unmeasured else max(noise, least)).value
            against_a = compare.compare_pair(spec.task, index, parsed[index], a, labels, allowed)
            against_b = compare.compare_pair(spec.task, index, parsed[index], b, labels, allowed)
            spread = compare.within_spread(spec.task, parsed[index], a, b, against_a, against_b, references)
            judged[index] = judge(index, against_a, against_b, references, spread=spread)
        return judged

    def _forced(self, spec: JobSpec, inputs: list[str], todo: list[int],
                parsed: dict[int, dict[str, Any]], batch: int = 32) -> dict[int, TaskAudit]:
        """Generation: one teacher-forced pass per reference over the committed tokens. The references
        agree where A's argmax is a near-tie in B's logits, and only the positions up to the provider's
        first deviation from both count (the later context is the provider's own, possibly garbage)."""
        loaded_a = self.a.load(spec, self.a.devices[0])
        loaded_b = self.b.load(spec, self.b.devices[0])
        judged: dict[int, TaskAudit] = {}
        ready = []
        for index in todo:
            refused = compare.check_shape(loaded_a, spec, index, parsed[index])
            if refused is None:
                ready.append(index)
            else:
                judged[index] = TaskAudit(index, Outcome.FAIL, refused.reason, refused)
        stops = compare.stops_of(loaded_a)
        coarse = _coarser(self.a.dtype_for(self.a.devices[0]), self.b.dtype_for(self.b.devices[0]))
        forced: dict[int, tuple[Forced, Forced, torch.Tensor]] = {}
        for start in range(0, len(ready), batch):
            group = ready[start:start + batch]
            texts, tokens = [inputs[i] for i in group], [parsed[i]["tokens"] for i in group]
            in_a = teacher_forced(loaded_a, spec, texts, tokens)
            # B one task at a time: its batch composition differs from A's as its dtype may. It is asked
            # for its margins at A's top candidates: how much those differ is the sequence's noise.
            in_b = [teacher_forced(loaded_b, spec, [text], [committed], probe=[a.top_ids])[0]
                    for text, committed, a in zip(texts, tokens, in_a, strict=True)]
            for index, a, b in zip(group, in_a, in_b, strict=True):
                forced[index] = (a, b, torch.maximum(b.noise_against(a), resolution(a, b, coarse)))
        for index, (a, b, noise) in forced.items():
            tokens = parsed[index]["tokens"]
            # No sample median here (see verifier.tolerance): the other sequences are the provider's too.
            allowed, end_allowed = tolerance.generation_allowances(noise, least=0.0)
            ends = (compare.ends_of(tokens, a.argmax, stops), compare.ends_of(tokens, b.argmax, stops))
            if a.finite() != b.finite():  # one reference overflowed (fp16): the other alone judges
                good, end = (a, ends[0]) if a.finite() else (b, ends[1])
                alone = compare.judge_tokens(index, good.behind, tolerance.NEAR_TIE_LOGITS, end, tolerance.LOGIT_FLOOR)
                judged[index] = judge(index, alone, alone, compare.TaskCheck(
                    index, True, "one reference's logits are not finite: judged by the other alone"))
                continue
            judged[index] = judge_generation(index, a.behind, b.behind, b.apart(), allowed, ends, end_allowed)
        return judged


def _answers(runtime: Runtime, spec: JobSpec, inputs: list[str], todo: list[int]) -> list[dict[str, Any]] | None:
    """One reference's recomputed answers, or ``None`` where it cannot give finite ones (the canonical
    encoding refuses NaN and infinities: an fp16 overflow)."""
    try:
        return [json.loads(output) for output in runtime.run(spec, inputs, indices=todo)]
    except ValueError as error:
        if "JSON compliant" not in str(error) and "finite" not in str(error):
            raise
        return None


def _coarser(first: torch.dtype, second: torch.dtype) -> torch.dtype:
    return first if torch.finfo(first).eps >= torch.finfo(second).eps else second


def _distance(task: TaskType, check: compare.TaskCheck) -> float:
    """A comparison's distance in its allowance's unit: 1 - cosine for embed, the probability gap for classify."""
    if check.metric is None:
        return float("nan")
    return 1.0 - check.metric if task == TaskType.EMBED else check.metric


def other_dtype(first: torch.dtype) -> torch.dtype:
    """Reference B's dtype: bf16 against an fp32 A (a CPU verifier sees bf16 instability too), else fp32."""
    return torch.bfloat16 if first == torch.float32 else torch.float32


def _dtype(runtime: Runtime, device: torch.device) -> str:
    return str(runtime.dtype_for(device)).removeprefix("torch.")


def audit_tasks(runtime: Runtime, spec: JobSpec, inputs: list[str], indices: list[int],
                committed: dict[int, bytes]) -> list[compare.TaskCheck]:
    """``compare.check_tasks``'s signature, by the audit's rule: both references over ``runtime``
    (``References.of``), allowances scaled to their noise. A task passes unless the rule fails it (an
    inconclusive is no fault of the provider's; its reason says so). For whoever wants the
    verifier's answer without its daemon: a requester's spot check, the auditor's re-execution, a
    provider reviewing its own outputs before it appeals."""
    audits = References.of(runtime).audit(spec, inputs, indices, committed)
    return [replace(audit.against_a, passed=audit.outcome is not Outcome.FAIL,
                    reason=f"inconclusive: {audit.reason}" if audit.outcome is Outcome.INCONCLUSIVE else audit.reason)
            for audit in audits]
