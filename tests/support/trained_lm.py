"""Small trained generators for calibrating the generate and summarize comparators.

Random test models (``tests.support.models``) spread their probability over many tokens, so bf16
noise and cheats look alike there; a trained model is confident where its task is clear, as real
models are. These train in well under a minute on one CPU core, over the tests' WordPiece tokenizer
(every word one token), on one synthetic task whose answer is a deterministic function of the input:
the distinct ``KEYWORDS`` of the input, in ``KEYWORDS`` order ("slashed quick brown ... one two ... ten"),
then ``[SEP]``, the end of sequence. The answer's length follows the input, so the end of sequence
matters; a prompt cut short loses keywords; sorting takes attention over the whole input, which a
shallower model does worse.

- ``trained_gpt2``: a 4-layer GPT-2; after the prompt ``[CLS] w1 ... wn [SEP]`` it generates the answer.
- ``student_gpt2``: a 2-layer GPT-2 distilled from it (its logits on the training sequences).
- ``trained_t5``: a 2+2-layer T5 that summarizes the input into the answer.

Inputs (``prompts``) have 3 to ``MAX_WORDS`` words, 40 % of them keywords, so most run past the
16 tokens that the prompt-cutting cheats keep. Training runs a fixed number of steps from fixed
seeds on one thread (never a wall-clock budget), so a recipe always gives the same weights; ``cached``
keeps each bundle across runs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedModel, T5Config, T5ForConditionalGeneration

from tests.support.model_cache import cached
from tests.support.models import WORDS, tokenizer

log = logging.getLogger(__name__)

MAX_WORDS = 24
KEYWORDS = WORDS[-20:]  # "slashed" .. "ten", in this order: the answers' words
FILLERS = tuple(word for word in WORDS if word not in KEYWORDS)
KEYWORD_SHARE = 0.4  # of the input words
# Room for any prompt the job spec allows (max_input_tokens up to 512 by default) plus 1,024 new
# tokens: the table costs 1536 x 64 floats, and the verifier refuses nothing for its size.
POSITIONS = 1536

_TASK = {"task": "sorted-distinct-keywords", "keywords": KEYWORDS, "share": KEYWORD_SHARE, "max_words": MAX_WORDS}
GPT2_RECIPE: dict[str, Any] = {"layers": 4, "width": 64, "heads": 4, "steps": 320, "batch": 64, "lr": 3e-3,
                               "seed": 0, **_TASK, "version": 1}
STUDENT_RECIPE: dict[str, Any] = {"layers": 2, "width": 64, "heads": 4, "steps": 250, "batch": 64, "lr": 3e-3,
                                  "seed": 1, "temperature": 1.0, "version": 1}
T5_RECIPE: dict[str, Any] = {"layers": 2, "width": 64, "heads": 4, "d_ff": 128, "steps": 320, "batch": 64,
                             "lr": 3e-3, "seed": 2, **_TASK, "version": 1}


def prompts(count: int, seed: int) -> list[str]:
    """``count`` inputs of the synthetic task, 3 to ``MAX_WORDS`` words each, at least one of them a
    keyword (so that no answer is empty)."""
    chooser = random.Random(seed)
    return [" ".join(_words(chooser)) for _ in range(count)]


def expected(text: str) -> str:
    """The right answer for ``text`` (both tasks), as the text the right tokens decode to."""
    return " ".join(_answer(text.split()))


def trained_gpt2() -> Path:
    """The teacher: a 4-layer GPT-2 trained on the task."""
    return cached("trained-gpt2", GPT2_RECIPE, lambda folder: _one_thread(_build_gpt2, folder, GPT2_RECIPE, None))


def student_gpt2() -> Path:
    """A 2-layer GPT-2 of the same tokenizer, distilled from ``trained_gpt2``'s logits."""
    teacher = trained_gpt2()
    recipe = {**STUDENT_RECIPE, "teacher": GPT2_RECIPE}
    return cached("student-gpt2", recipe,
                  lambda folder: _one_thread(_build_gpt2, folder, STUDENT_RECIPE, teacher))


def trained_t5() -> Path:
    """A 2+2-layer T5 trained on the task."""
    return cached("trained-t5", T5_RECIPE, lambda folder: _one_thread(_build_t5, folder, T5_RECIPE))


def _one_thread(build: Callable[..., None], *args: Any) -> None:
    """Runs ``build`` on one intra-op thread: these models are so small that a second thread only
    spins, and on a loaded two-core machine spinning threads made a step ten times slower in CPU time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build(*args)
    finally:
        torch.set_num_threads(threads)


# -- data -----------------------------------------------------------------------------------------


def _words(chooser: random.Random) -> list[str]:
    words = [chooser.choice(KEYWORDS) if chooser.random() < KEYWORD_SHARE else chooser.choice(FILLERS)
             for _ in range(chooser.randint(3, MAX_WORDS))]
    if not any(word in KEYWORDS for word in words):
        words[chooser.randrange(len(words))] = chooser.choice(KEYWORDS)
    return words


def _answer(words: list[str]) -> list[str]:
    return sorted(set(words) & set(KEYWORDS), key=KEYWORDS.index)


def _padded(rows: list[list[int]], fill: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [fill] * (width - len(row)) for row in rows])


def _gpt2_batches(vocab: dict[str, int], batch: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]]:
    """(input ids, attention mask, labels): labels only on the continuation and its end of sequence."""
    chooser = random.Random(seed)
    cls, sep, pad = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]
    while True:
        rows, labels = [], []
        for _ in range(batch):
            words = _words(chooser)
            prompt = [cls, *(vocab[word] for word in words), sep]
            answer = [*(vocab[word] for word in _answer(words)), sep]
            rows.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        ids = _padded(rows, pad)
        mask = _padded([[1] * len(row) for row in rows], 0)
        yield ids, mask, _padded(labels, -100)


def _t5_batches(vocab: dict[str, int], batch: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                                              torch.Tensor]]:
    chooser = random.Random(seed)
    cls, sep, pad = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]
    while True:
        inputs, labels = [], []
        for _ in range(batch):
            words = _words(chooser)
            inputs.append([cls, *(vocab[word] for word in words), sep])
            labels.append([*(vocab[word] for word in _answer(words)), sep])
        ids = _padded(inputs, pad)
        yield ids, (ids != pad).long(), _padded(labels, -100)


# -- training -------------------------------------------------------------------------------------


def _train(model: PreTrainedModel, steps: int, lr: float, loss_of: Callable[[int], torch.Tensor]) -> float:
    """AdamW with a linear warm-up and a cosine decay over ``steps``; the last loss, for the log."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(
            torch.pi * step / steps)).item()))
    model.train()
    loss = torch.tensor(0.0)
    for step in range(steps):
        loss = loss_of(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    return float(loss.detach())


def _build_gpt2(folder: Path, recipe: dict[str, Any], teacher: Path | None) -> None:
    torch.manual_seed(recipe["seed"])
    tok = tokenizer(folder)
    vocab = tok.get_vocab()
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_embd=recipe["width"], n_layer=recipe["layers"], n_head=recipe["heads"],
        n_positions=POSITIONS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id))
    batches = _gpt2_batches(vocab, recipe["batch"], recipe["seed"])
    big = None
    if teacher is not None:
        big = GPT2LMHeadModel.from_pretrained(teacher, use_safetensors=True, local_files_only=True).eval()

    def loss_of(step: int) -> torch.Tensor:
        ids, mask, labels = next(batches)
        if big is None:
            return model(input_ids=ids, attention_mask=mask, labels=labels).loss
        # Distillation: match the teacher's next-token distribution where it answers.
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        with torch.no_grad():
            target = big(input_ids=ids, attention_mask=mask).logits[:, :-1]
        where = labels[:, 1:] != -100
        temperature = recipe["temperature"]
        return torch.nn.functional.kl_div(torch.log_softmax(logits[where] / temperature, dim=-1),
                                          torch.log_softmax(target[where] / temperature, dim=-1),
                                          log_target=True, reduction="batchmean")

    loss = _train(model, recipe["steps"], recipe["lr"], loss_of)
    log.info("trained GPT-2 (%d layers) to loss %.4f", recipe["layers"], loss)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def _build_t5(folder: Path, recipe: dict[str, Any]) -> None:
    torch.manual_seed(recipe["seed"])
    tok = tokenizer(folder)
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=len(tok), d_model=recipe["width"], d_kv=recipe["width"] // recipe["heads"], d_ff=recipe["d_ff"],
        num_layers=recipe["layers"], num_decoder_layers=recipe["layers"], num_heads=recipe["heads"],
        dropout_rate=0.0, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
        decoder_start_token_id=tok.pad_token_id))  # type: ignore[call-arg]  # a PretrainedConfig kwarg
    batches = _t5_batches(tok.get_vocab(), recipe["batch"], recipe["seed"])

    def loss_of(step: int) -> torch.Tensor:
        ids, mask, labels = next(batches)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    loss = _train(model, recipe["steps"], recipe["lr"], loss_of)
    log.info("trained T5 to loss %.4f", loss)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
