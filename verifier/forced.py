"""Teacher forcing: one forward pass over a prompt and the committed tokens gives the model's logits
at every generated position, so a generation is checked without generating it again.

Per position the verifier keeps a few numbers, never the logits: how far the committed token is
behind the argmax (``behind``), the argmax, and the logits of the reference's top candidates
(``top_ids``/``top_margins``). Another reference, forced over the same tokens, is asked for its
margins at those candidates (``probe``): where the two references' margins differ, honest hardware
may pick differently, and by how much they differ is the noise the tolerance is scaled to
(``verifier.tolerance``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from marketplace.jobspec import JobSpec, TaskType
from provider.runtime import LoadedModel
from verifier.tolerance import NEAR_TIE_LOGITS

TOP = 4  # candidates probed per position: the argmax and the three runners-up


@dataclass
class Forced:
    """One task's teacher-forced pass under one reference.

    ``behind``: per position, the committed token's logit below the argmax (0 where it is the argmax).
    ``argmax``: the argmax token per position. ``top_ids``/``top_margins``: per position, this
    reference's ``TOP`` best tokens and how far each is below the argmax (positions x ``TOP``).
    ``probed``: with ``probe``, how far the probed tokens (another reference's ``top_ids``) are below
    this reference's argmax, in the same shape; its first column is how far the other reference's
    argmax is behind ours."""

    behind: torch.Tensor
    argmax: list[int]
    top_ids: torch.Tensor
    top_margins: torch.Tensor
    probed: torch.Tensor | None = field(default=None)
    best: torch.Tensor | None = field(default=None)  # the argmax logit per position

    def finite(self) -> bool:
        """Whether this reference's numbers are all finite (an fp16 model can overflow to inf and NaN)."""
        parts = [self.behind, self.top_margins] + ([self.probed] if self.probed is not None else [])
        return all(bool(torch.isfinite(part).all()) for part in parts)

    def apart(self) -> torch.Tensor:
        """How far the probed reference's argmax is behind ours, per position (needs ``probe``)."""
        assert self.probed is not None
        return self.probed[:, 0]

    def noise_against(self, other: Forced, within: float = NEAR_TIE_LOGITS) -> torch.Tensor:
        """Per position, how much the two references disagree on the margins that decide the token:
        the largest difference, over ``other``'s top candidates, between how far each is below
        ``other``'s argmax and how far it is below ours (``self`` must have probed ``other``'s
        ``top_ids``). Zero where both compute the same logits.

        Only candidates within ``within`` logits of the argmax in either reference count: those are the
        ones rounding could promote. A runner-up ten logits down moves by more in absolute terms (bf16
        keeps about three significant digits) without ever deciding a token, and counting it would
        widen every allowance of a confident model. The committed token itself does not count (an
        honest near-tie is among the candidates): so the noise at a position depends only on the
        tokens before it, never on the one being judged."""
        assert self.probed is not None
        width = min(self.probed.shape[1], other.top_margins.shape[1])
        ours, theirs = self.probed[:, :width], other.top_margins[:, :width]
        close = (ours <= within) | (theirs <= within)
        return torch.where(close, (ours - theirs).abs(), torch.zeros_like(ours)).amax(dim=1)


@torch.inference_mode()
def token_gaps(loaded: LoadedModel, spec: JobSpec, texts: list[str], tokens: list[list[int]]) -> list[torch.Tensor]:
    """How far behind the model's argmax each committed token is, in logits (0 where it is the
    argmax), as a float32 CPU tensor per task (``teacher_forced``'s ``behind``)."""
    return [forced.behind for forced in teacher_forced(loaded, spec, texts, tokens)]


@torch.inference_mode()
def teacher_forced(loaded: LoadedModel, spec: JobSpec, texts: list[str], tokens: list[list[int]],
                   probe: list[torch.Tensor] | None = None) -> list[Forced]:
    """One right-padded, teacher-forced forward pass for the batch (padding on the right leaves every
    real position's attention and position id unchanged), giving each task's ``Forced``; with
    ``probe`` (per task, a positions x k tensor of token ids: another reference's ``top_ids``), how
    far those tokens are below this reference's argmax.

    Only a few numbers per position leave the model's dtype: a float copy of the whole logits tensor
    would be batch x length x vocabulary x 4 bytes (gigabytes for a 128k-token vocabulary), and
    decoder-only models skip the vocabulary projection of all prompt positions but the last
    (``logits_to_keep``)."""
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
        top = scores.topk(min(TOP, scores.shape[1]), dim=1)
        probed = None
        if probe is not None:
            picked = scores.gather(1, probe[row].to(device))
            probed = (best.values.float().unsqueeze(1) - picked.float()).cpu()
        forced.append(Forced((best.values.float() - chosen.float()).cpu(), best.indices.cpu().tolist(),
                             top.indices.cpu(), (best.values.float().unsqueeze(1) - top.values.float()).cpu(),
                             probed, best.values.float().cpu()))
    return forced


def _right_padded(rows: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for number, row in enumerate(rows):
        ids[number, :len(row)] = torch.tensor(row)
        mask[number, :len(row)] = 1
    return ids.to(device), mask.to(device)


def resolution(first: Forced, second: Forced, dtype: torch.dtype) -> torch.Tensor:
    """Per position, half a step of ``dtype`` (the coarser reference's) at the size of the argmax
    logit: rounding each of two logits by up to half a step moves their margin by up to one step, so
    no measured noise counts as less than half of it (four noises then allow two steps). Two
    references may by chance agree to far less at one position, while an honest provider's rounding
    flips a near-tie there (an end of sequence 0.031 logits behind, one bf16 step at logits of 4 to 8)."""
    assert first.best is not None and second.best is not None
    size = torch.maximum(first.best.abs(), second.best.abs()).clamp(min=torch.finfo(torch.float32).tiny)
    size = torch.nan_to_num(size, nan=1.0, posinf=1.0)
    return 0.5 * torch.finfo(dtype).eps * torch.exp2(torch.floor(torch.log2(size)))
