"""Training from a base model (`train.init_from`): a registered, imported or exported model
whose weights, shape and tokenizer the run starts from."""

from __future__ import annotations

from model.checkpoint import TOKENIZER, load_model_config
from tasks.config import LmforgeConfig
from tasks.register.resolve import resolve_model


def start_from_base(config: LmforgeConfig) -> str:
    """The exported folder of `train.init_from` ("" when unset), after setting `config.model`
    to its shape and `tokenize.tokenizer_file` to its tokenizer (unless one is given)."""
    uri = config.train.init_from
    if not uri:
        return ""
    base = resolve_model(config, uri)
    config.model = load_model_config(base.model_dir)
    if not config.tokenize.tokenizer_file:
        config.tokenize.tokenizer_file = str(base.model_dir / TOKENIZER)
    return str(base.model_dir)
