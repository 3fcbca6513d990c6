"""Compute-saving cheats on generate and summarize jobs, for tests and bench_verify.py only.

Each strategy decodes with the job's own model (loaded through the provider's fp32 runtime, then
deep-copied before any change) or a distilled student, one task at a time, and commits what an honest
provider commits: ``{"text", "tokens"}`` in canonical form, the text decoded from the tokens, stopped
at the end-of-sequence token or at ``max_new_tokens``. Only the model can tell these outputs from
honest ones.

``saved`` is the share of the honest compute skipped, from layer-token counts: a model of ``L``
layers that reads ``P`` prompt tokens and generates ``G`` tokens costs ``L x (P + G)`` (every token
goes once through every layer; embeddings and the vocabulary projection are left out), summed over
the job's tasks. A seq2seq model costs ``L_enc x P + L_dec x G``. Strategies that change no
arithmetic save 0. ``detail["decode_saved"]``, where given, counts the generated tokens only
(``L x G``): decoding one token at a time is what bounds a provider's time, prompts being read in
one parallel pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, Conv1D

from marketplace.jobspec import TaskType
from marketplace.results import canonical
from provider.runtime import LoadedModel
from tests.support.strategies import Cheat, Setting, Strategy

GENERATE = frozenset({TaskType.GENERATE})
BOTH = frozenset({TaskType.GENERATE, TaskType.SUMMARIZE})
PROMPT_KEPT = 16  # tokens the prompt-cutting cheats keep
TEMPERATURE = 0.3
EOS_MARGIN = 1.0  # logits: how near the argmax end-of-sequence must be for eos-early to take it
QUANT_BITS = 4
QUANT_GROUP = 32

Chooser = Callable[[torch.Tensor, int], int]  # (next-token logits, position) -> token


# -- decoding -------------------------------------------------------------------------------------


@dataclass
class _Task:
    """One task as a cheat sees it: the prompt as the runtime tokenizes it and the honest tokens."""

    prompt: list[int]
    honest: list[int]


class _Decoder:
    """Next-token logits of ``model`` after the prompt and the tokens generated so far, recomputed
    from scratch at each step (the test models are tiny; no cache means a cut or quantized copy
    needs no cache of matching shape)."""

    def __init__(self, model: Any, prompt: list[int], device: torch.device) -> None:
        self.model, self.device = model, device
        self.seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        ids = torch.tensor([prompt], device=device)
        if self.seq2seq:
            self.encoded = model.get_encoder()(input_ids=ids)
            self.start = model.config.decoder_start_token_id
        self.prompt = prompt

    @torch.inference_mode()
    def logits(self, generated: list[int]) -> torch.Tensor:
        if self.seq2seq:
            decoder = torch.tensor([[self.start, *generated]], device=self.device)
            out = self.model(encoder_outputs=self.encoded, decoder_input_ids=decoder, use_cache=False)
        else:
            out = self.model(input_ids=torch.tensor([[*self.prompt, *generated]], device=self.device),
                             use_cache=False)
        return out.logits[0, -1].float()


def _greedy(logits: torch.Tensor, position: int) -> int:
    return int(logits.argmax())


def _decode(decoder: _Decoder, limit: int, stops: set[int], choose: Chooser = _greedy,
            prefix: Sequence[int] = ()) -> list[int]:
    generated = list(prefix)[:limit]
    while len(generated) < limit and not (generated and generated[-1] in stops):
        generated.append(choose(decoder.logits(generated), len(generated)))
    return generated


def _stops(model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos]) - {None}


def _tasks(setting: Setting, loaded: LoadedModel) -> list[_Task]:
    """Prompts truncated to ``max_input_tokens`` exactly as the runtime does, and the honest tokens."""
    limit = setting.spec.parameters.max_input_tokens
    return [_Task(loaded.tokenizer(text, truncation=True, max_length=limit)["input_ids"],
                  json.loads(honest)["tokens"])
            for text, honest in zip(setting.texts, setting.honest, strict=True)]


def _output(tokenizer: Any, tokens: list[int]) -> bytes:
    return canonical({"text": tokenizer.decode(tokens, skip_special_tokens=True), "tokens": tokens})


def _loaded(setting: Setting) -> LoadedModel:
    return setting.runtime.load(setting.spec, setting.device)


def _layers(model: Any) -> tuple[int, int]:
    """(encoder layers, decoder layers); a causal LM's layers count as decoder layers."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return config.num_layers, config.num_decoder_layers
    return 0, config.num_hidden_layers


def _cost(layers: tuple[int, int], prompt: int, generated: int) -> int:
    """Layer-tokens: an encoder reads the prompt, a decoder the generated tokens; a causal LM
    (no encoder) pushes both through its layers."""
    encoder, decoder = layers
    return encoder * prompt + decoder * (generated if encoder else prompt + generated)


def _share(cheat: float, honest: float) -> float:
    return round(min(1.0, max(0.0, 1.0 - cheat / honest)), 4) if honest else 0.0


def replay_greedy(setting: Setting) -> list[bytes]:
    """What ``_decode`` gives with the unmodified model: the honest outputs, if the cheats' decoding
    matches the runtime's (the tests check it, so a changed answer is the strategy's doing)."""
    loaded = _loaded(setting)
    stops, limit = _stops(loaded.model), setting.spec.parameters.max_new_tokens
    return [_output(loaded.tokenizer, _decode(_Decoder(loaded.model, task.prompt, setting.device), limit, stops))
            for task in _tasks(setting, loaded)]


# -- strategies -----------------------------------------------------------------------------------


def _with_model(setting: Setting, change: Callable[[Any], Any], choose: Chooser | None = None,
                seeded: bool = False) -> tuple[list[bytes], list[_Task], list[list[int]], Any]:
    """Greedy (or ``choose``) decoding of every task with ``change(copy of the model)``."""
    loaded = _loaded(setting)
    model = change(copy.deepcopy(loaded.model)).eval()
    stops, limit = _stops(loaded.model), setting.spec.parameters.max_new_tokens
    tasks = _tasks(setting, loaded)
    produced = []
    for index, task in enumerate(tasks):
        pick = choose
        if seeded:
            pick = _sampler(torch.Generator(device=setting.device).manual_seed(setting.seed * 100_003 + index))
        produced.append(_decode(_Decoder(model, task.prompt, setting.device), limit, stops, pick or _greedy))
    return [_output(loaded.tokenizer, tokens) for tokens in produced], tasks, produced, model


def _sampler(generator: torch.Generator) -> Chooser:
    def choose(logits: torch.Tensor, position: int) -> int:
        weights = torch.softmax(logits / TEMPERATURE, dim=-1)
        return int(torch.multinomial(weights, 1, generator=generator))

    return choose


def student_after_k(setting: Setting) -> Cheat:
    if setting.student is None:
        raise ValueError("student-after-k needs Setting.student: a distilled model of the same tokenizer")
    loaded = _loaded(setting)
    student = AutoModelForCausalLM.from_pretrained(setting.student, dtype=torch.float32, use_safetensors=True,
                                                   local_files_only=True).to(setting.device).eval()
    stops, limit = _stops(loaded.model), setting.spec.parameters.max_new_tokens
    big, small = _layers(loaded.model), _layers(student)
    outputs, honest_cost, cheat_cost, honest_decode, cheat_decode = [], 0, 0, 0, 0
    for task in _tasks(setting, loaded):
        k = max(2, len(task.honest) // 3)
        tokens = _decode(_Decoder(student, task.prompt, setting.device), limit, stops, prefix=task.honest[:k])
        kept = min(k, len(task.honest))
        outputs.append(_output(loaded.tokenizer, tokens))
        honest_cost += _cost(big, len(task.prompt), len(task.honest))
        cheat_cost += _cost(big, len(task.prompt), kept) + _cost(small, len(task.prompt), len(tokens))
        honest_decode += big[1] * len(task.honest)
        cheat_decode += big[1] * kept + small[1] * (len(tokens) - kept)
    return Cheat(outputs, _share(cheat_cost, honest_cost), {"decode_saved": _share(cheat_decode, honest_decode)})


def _first_half(model: Any) -> Any:
    """The first half of the (decoder) layers, then the model's own final norm and head."""
    if getattr(model.config, "is_encoder_decoder", False):
        kept = model.config.num_decoder_layers // 2
        model.decoder.block = model.decoder.block[:kept]
        model.config.num_decoder_layers = kept
    else:
        kept = model.config.num_hidden_layers // 2
        model.transformer.h = model.transformer.h[:kept]
        model.config.num_hidden_layers = kept
    return model


def first_layers(setting: Setting) -> Cheat:
    outputs, tasks, produced, model = _with_model(setting, _first_half)
    honest_layers = _layers(_loaded(setting).model)
    honest = sum(_cost(honest_layers, len(task.prompt), len(task.honest)) for task in tasks)
    cheat = sum(_cost(_layers(model), len(task.prompt), len(tokens)) for task, tokens in zip(tasks, produced,
                                                                                              strict=True))
    return Cheat(outputs, _share(cheat, honest))


def fake_quantize(weight: torch.Tensor, bits: int = QUANT_BITS, group: int = QUANT_GROUP) -> torch.Tensor:
    """Symmetric absmax quantization of a (out, in) weight in groups of ``group`` inputs per output
    channel, returned dequantized: what a 4-bit kernel computes with, in the weight's own dtype."""
    out, inputs = weight.shape
    width = group if inputs % group == 0 else inputs
    grouped = weight.reshape(out, inputs // width, width)
    top = 2 ** (bits - 1) - 1
    scale = grouped.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / top
    return ((grouped / scale).round().clamp(-top, top) * scale).reshape(out, inputs)


def _quantized(model: Any) -> Any:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(fake_quantize(module.weight))
            elif isinstance(module, Conv1D):  # GPT-2 stores (in, out)
                module.weight.copy_(fake_quantize(module.weight.T).T)
    return model


def int4(setting: Setting) -> Cheat:
    outputs, *_ = _with_model(setting, _quantized)
    saved = 1.0 - QUANT_BITS / 16
    return Cheat(outputs, saved, {"weight_bytes_saved": saved})


def temperature(setting: Setting) -> Cheat:
    outputs, *_ = _with_model(setting, lambda model: model, seeded=True)
    return Cheat(outputs, 0.0)


def _prompt_cut(setting: Setting, keep: Callable[[list[int]], list[int]]) -> Cheat:
    loaded = _loaded(setting)
    stops, limit = _stops(loaded.model), setting.spec.parameters.max_new_tokens
    layers = _layers(loaded.model)
    outputs, honest, cheat = [], 0, 0
    for task in _tasks(setting, loaded):
        prompt = keep(task.prompt) if len(task.prompt) > PROMPT_KEPT else task.prompt
        tokens = _decode(_Decoder(loaded.model, prompt, setting.device), limit, stops)
        outputs.append(_output(loaded.tokenizer, tokens))
        honest += _cost(layers, len(task.prompt), len(task.honest))
        cheat += _cost(layers, len(prompt), len(tokens))
    return Cheat(outputs, _share(cheat, honest))


def prompt_head(setting: Setting) -> Cheat:
    # The first tokens and the closing special token ([SEP]), as a tokenizer truncating to 16 gives.
    return _prompt_cut(setting, lambda prompt: [*prompt[:PROMPT_KEPT - 1], prompt[-1]])


def prompt_tail(setting: Setting) -> Cheat:
    return _prompt_cut(setting, lambda prompt: [prompt[0], *prompt[-(PROMPT_KEPT - 1):]])


def eos_early(setting: Setting) -> Cheat:
    loaded = _loaded(setting)
    stops, limit = _stops(loaded.model), setting.spec.parameters.max_new_tokens
    eos = min(stops)

    def choose(logits: torch.Tensor, position: int) -> int:
        return eos if float(logits.max() - logits[eos]) <= EOS_MARGIN else int(logits.argmax())

    layers = _layers(loaded.model)
    outputs, honest, cheat = [], 0, 0
    for task in _tasks(setting, loaded):
        tokens = _decode(_Decoder(loaded.model, task.prompt, setting.device), limit, stops, choose)
        outputs.append(_output(loaded.tokenizer, tokens))
        honest += _cost(layers, len(task.prompt), len(task.honest))
        cheat += _cost(layers, len(task.prompt), len(tokens))
    return Cheat(outputs, _share(cheat, honest))


def swap(setting: Setting) -> Cheat:
    """Tasks 0 and 1 trade outputs, 2 and 3, and so on (a last odd task keeps its own)."""
    outputs = list(setting.honest)
    for first in range(0, len(outputs) - 1, 2):
        outputs[first], outputs[first + 1] = outputs[first + 1], outputs[first]
    return Cheat(outputs, 0.0)


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("student-after-k", GENERATE, student_after_k,
             "the first k = max(2, a third of the honest length) tokens honest, then Setting.student decodes "
             "greedily; saved: 1 - (L_t (P + k) + L_s (P + G)) / (L_t (P + G_honest)), and decode_saved "
             "1 - (L_t k + L_s (G - k)) / (L_t G_honest)", needs_student=True),
    Strategy("first-layers", BOTH, first_layers,
             "only the first half of the (decoder) layers, then the final norm and the head; saved from "
             "the layer-tokens skipped (half of a causal LM's; half the decoder's in a seq2seq model)"),
    Strategy("int4", BOTH, int4,
             "every Linear and Conv1D weight fake-quantized to 4 bits (symmetric absmax, per output "
             "channel in groups of 32), then greedy; saved: the 16-bit weight bytes not read (0.75), "
             "which bound decoding's speed, the multiply-adds being the same"),
    Strategy("temperature", BOTH, temperature,
             f"sampling at T = {TEMPERATURE} (seeded per task) instead of greedy; saves nothing"),
    Strategy("prompt-head", GENERATE, prompt_head,
             f"the prompt cut to its first {PROMPT_KEPT} tokens (its closing token kept), then greedy; saved "
             "from the prompt tokens not read"),
    Strategy("prompt-tail", GENERATE, prompt_tail,
             f"the prompt cut to its last {PROMPT_KEPT} tokens (its opening token kept), then greedy; saved "
             "from the prompt tokens not read"),
    Strategy("eos-early", BOTH, eos_early,
             f"greedy, but end of sequence at the first step where it is within {EOS_MARGIN} logit of the "
             "argmax; saved from the tokens not generated"),
    Strategy("swap", BOTH, swap, "tasks' honest outputs swapped in pairs; saves nothing"),
)
