"""The optional model screen: refuse a model whose outputs move with the floating-point precision.

Verifiers re-execute in their own dtype (bf16 on most GPUs) and compare with tolerances
(``verifier.compare``). A model so unstable that bf16 rounding moves its outputs beyond those
tolerances (an untrained or chaotic model) gets honest work judged inconclusive at best, failed at
worst, and its provider's collateral put at risk for nothing. With ``model_screen`` on, the daemon
runs the ``screen_inputs`` longest inputs in fp32 and checks them with the same comparator in bf16
before it claims; a job whose model disagrees with itself is skipped with the reason.

It costs two extra model loads and a few forward passes per job, so it is off by default.
"""

from __future__ import annotations

import logging

import torch

from marketplace.jobspec import JobSpec
from provider.runtime import Runtime
from verifier.compare import check_tasks

log = logging.getLogger(__name__)


def screen_model(runtime: Runtime, spec: JobSpec, inputs: list[str], count: int) -> str | None:
    """Why the job's model is too unstable to serve, or ``None`` when fp32 and bf16 agree on ``count`` inputs.

    Both runs are on the runtime's first device, in fresh runtimes dropped afterwards, so the
    daemon's own loaded model (and its memory) is left as it was.
    """
    # The longest inputs: rounding errors grow with the sequence, so they diverge first.
    indices = sorted(sorted(range(len(inputs)), key=lambda index: -len(inputs[index]))[:count])
    if not indices:
        return None
    device = runtime.devices[0]
    reference = Runtime(runtime.store, runtime.cache, devices=[device], dtype=torch.float32, limits=runtime.limits)
    reduced = Runtime(runtime.store, runtime.cache, devices=[device], dtype=torch.bfloat16, limits=runtime.limits)
    committed = dict(zip(indices, reference.run(spec, inputs, indices=indices), strict=True))
    checks = check_tasks(reduced, spec, inputs, indices, committed)
    failed = [check for check in checks if not check.passed]
    log.info("model %s screened on %d inputs: %s", spec.model, len(indices),
             "stable" if not failed else f"{len(failed)} diverge")
    if not failed:
        return None
    first = failed[0]
    return (f"unstable model: fp32 and bf16 disagree beyond the verifiers' tolerance on {len(failed)} of "
            f"{len(indices)} screened inputs (task {first.index}: {first.reason})")
