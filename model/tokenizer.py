"""Tokenizer facts shared by the tokenize step, fine-tuning and evaluation (the shard format
beside it is model/token_format.py).

`SPECIAL_TOKENS` are the tokens the tokenize step trains in, in this order, so a trained
tokenizer gives them ids 0..5: end of text (ends every document in the shards), padding, then
the chat markers of model/sft.py (`<|role|>` content `<|end|>`). An imported model's tokenizer
has its own end-of-text token, named by the `tokenizer_config.json` kept beside it
(`end_of_text`). `load_tokenizer` loads a
tokenizer for encoding text, in which those strings stay plain text: a document or a message
that quotes `<|endoftext|>` or `<|assistant|>` cannot forge a boundary or a turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

EOT = "<|endoftext|>"
PAD = "<|pad|>"
END = "<|end|>"
ROLE_TOKENS = {"user": "<|user|>", "assistant": "<|assistant|>", "system": "<|system|>"}
CHAT_TOKENS = [*ROLE_TOKENS.values(), END]
SPECIAL_TOKENS = [EOT, PAD, *CHAT_TOKENS]
# transformers' tokenizer settings; an imported model's is kept beside its tokenizer.json
TOKENIZER_CONFIG = "tokenizer_config.json"


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


def token_text(token: Any) -> str | None:
    """A tokenizer_config.json token entry: a string or an AddedToken dict `{"content": ...}`."""
    return token.get("content") if isinstance(token, dict) else token


def end_of_text(tokenizer_path: Path | str) -> str:
    """The token that ends every document for this tokenizer: the `eos_token` of the
    `tokenizer_config.json` beside it (an imported model's, model/hf.py), else `<|endoftext|>`."""
    tokenizer_path = Path(tokenizer_path)
    tokenizer = load_tokenizer(tokenizer_path)
    side = tokenizer_path.with_name(TOKENIZER_CONFIG)
    eos = token_text(json.loads(side.read_text()).get("eos_token")) if side.is_file() else None
    for token in (eos, EOT):
        if token and tokenizer.token_to_id(token) is not None:
            return token
    raise ValueError(
        f"{tokenizer_path} has no {EOT} token and no {TOKENIZER_CONFIG} eos_token beside it, so "
        "documents cannot be ended: use a tokenizer the tokenize step trained or an imported "
        "model's folder"
    )
