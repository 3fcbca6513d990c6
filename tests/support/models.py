"""The tests' tiny models: the ones the demo builds (marketplace/demo/models.py)."""

from marketplace.demo.models import KINDS, SPECIALS, WORDS, build_bundle, tokenizer

__all__ = ["KINDS", "SPECIALS", "WORDS", "build_bundle", "tokenizer"]
