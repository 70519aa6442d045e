"""Tokenizer facts shared by the tokenize step, fine-tuning and evaluation (the shard format
beside it is model/token_format.py).

`SPECIAL_TOKENS` are the tokens the tokenize step trains in, in this order, so a trained
tokenizer gives them ids 0..5: end of text (ends every document in the shards), padding, then
the chat markers of model/sft.py (`<|role|>` content `<|end|>`). `load_tokenizer` loads a
tokenizer for encoding text, in which those strings stay plain text: a document or a message
that quotes `<|endoftext|>` or `<|assistant|>` cannot forge a boundary or a turn.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

EOT = "<|endoftext|>"
PAD = "<|pad|>"
END = "<|end|>"
ROLE_TOKENS = {"user": "<|user|>", "assistant": "<|assistant|>", "system": "<|system|>"}
CHAT_TOKENS = [*ROLE_TOKENS.values(), END]
SPECIAL_TOKENS = [EOT, PAD, *CHAT_TOKENS]


def for_text(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer`, set to encode special-token strings in the text as plain text."""
    tokenizer.encode_special_tokens = True
    return tokenizer


def load_tokenizer(path: Path | str) -> Tokenizer:
    """The tokenizer.json at `path`, for encoding document or message text (`for_text`)."""
    return for_text(Tokenizer.from_file(str(path)))


def tokenizer_from_json(text: str) -> Tokenizer:
    """A tokenizer from the contents of a tokenizer.json, for encoding text (`for_text`)."""
    return for_text(Tokenizer.from_str(text))
