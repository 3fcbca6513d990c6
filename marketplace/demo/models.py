"""Tiny real transformer models, built and saved as safetensors here (nothing is downloaded).

The demo's generate job runs on one (no trained generator ships offline), and the tests build all
four kinds. Each bundle is a Hugging Face layout directory: config.json, model.safetensors and a WordPiece
tokenizer built from a small vocabulary. Weights are seeded, so a bundle's CID is stable.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast: a lazy export
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
)

WORDS = (
    "the",
    "a",
    "an",
    "is",
    "was",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "that",
    "it",
    "be",
    "are",
    "were",
    "not",
    "but",
    "or",
    "model",
    "gpu",
    "job",
    "task",
    "price",
    "proof",
    "token",
    "chain",
    "block",
    "hash",
    "store",
    "data",
    "input",
    "output",
    "text",
    "fast",
    "slow",
    "good",
    "bad",
    "great",
    "poor",
    "happy",
    "sad",
    "market",
    "provider",
    "verifier",
    "requester",
    "audit",
    "cheat",
    "honest",
    "paid",
    "slashed",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "hello",
    "world",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KINDS = ("embed", "classify", "generate", "summarize")
# Position tables large enough for any job with the default max_input_tokens (512): the runtime refuses a job
# that can run past the table (``provider.runtime.bundle.check_positions``). BERT encodes up to 512 tokens;
# GPT-2 holds the prompt and up to 1,024 new tokens (jobspec's bound on max_new_tokens). T5's are relative.
ENCODER_POSITIONS = 512
DECODER_POSITIONS = 512 + 1024


def tokenizer(directory: Path) -> BertTokenizerFast:
    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)]
    # One id per token, contiguous: "a" is both a word and a letter.
    tokens = list(dict.fromkeys([*SPECIALS, *WORDS, *letters, *(f"##{letter}" for letter in letters)]))
    return BertTokenizerFast(vocab={token: index for index, token in enumerate(tokens)}, do_lower_case=True)


def build_bundle(kind: str, directory: Path, seed: int = 0) -> Path:
    """Writes a tiny model for task ``kind`` (embed, classify, generate, summarize) into ``directory``."""
    torch.manual_seed(seed)
    tok = tokenizer(directory)
    size = len(tok)
    model: PreTrainedModel
    # A wide initialization makes even an untrained model's outputs differ from input to input; too
    # wide, and the model turns chaotic: bf16 rounding then moves its outputs as far as another input
    # would, which real (trained) models never do.
    bert: dict[str, Any] = {
        "vocab_size": size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "initializer_range": 0.5,
    }
    if kind == "embed":
        model = BertModel(BertConfig(**bert))
    elif kind == "classify":
        labels = {0: "negative", 1: "neutral", 2: "positive"}
        # 0.3, not 0.5: at 0.5 this model is chaotic enough that bf16 moves its probabilities by up to
        # 0.08 (more than the verifier's tolerance) against fp32; at 0.3 by 0.012, while replayed inputs
        # still land a median 0.1 apart.
        config = BertConfig(**{**bert, "initializer_range": 0.3}, num_labels=3, id2label=labels,  # type: ignore[call-arg]
                            label2id={name: index for index, name in labels.items()})
        model = BertForSequenceClassification(config)
    elif kind == "generate":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=size,
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=256,
                initializer_range=0.3,  # at 0.5, bf16 put honest tokens up to 1.66 logits off the argmax
                bos_token_id=tok.cls_token_id,
                eos_token_id=tok.sep_token_id,
                pad_token_id=tok.pad_token_id,
            )
        )
    elif kind == "summarize":
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=size,
                d_model=32,
                d_kv=16,
                d_ff=64,
                num_layers=2,
                num_decoder_layers=2,
                num_heads=2,
                initializer_factor=1.5,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.sep_token_id,
                decoder_start_token_id=tok.pad_token_id,  # type: ignore[call-arg]  # a PretrainedConfig kwarg
            )
        )
    else:
        raise ValueError(kind)
    if kind in ("embed", "classify"):
        model = _with_positions(model, "max_position_embeddings", ENCODER_POSITIONS, seed)
    elif kind == "generate":
        model = _with_positions(model, "n_positions", DECODER_POSITIONS, seed)
    model.eval()  # type: ignore[no-untyped-call]  # transformers leaves it untyped
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return directory


def _with_positions(model: PreTrainedModel, field: str, positions: int, seed: int) -> PreTrainedModel:
    """``model`` with a table of ``positions`` positions: its own rows first, then rows drawn apart.
    The models were drawn (and calibrated: honest bf16 noise, cheat detection) with smaller tables, so
    every other weight, and every output on inputs that fit the old table, stays what it was."""
    config = copy.deepcopy(model.config)
    setattr(config, field, positions)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        grown = type(model)(config)
    own = model.state_dict()
    with torch.no_grad():
        for key, value in grown.state_dict().items():
            value[: own[key].shape[0]].copy_(own[key])  # the position table gains rows; all else is the same shape
    return grown
