"""Small random models: our exported GPTs, and Hugging Face Llama checkpoints built and saved by
`transformers` itself."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from model.checkpoint import export_model
from model.gpt import GPT, ModelConfig
from model.tokenizer import load_tokenizer


def hf_checkpoint(folder: Path, tokenizer_file: Path, kv: int, tied: bool) -> Path:
    """A small random LlamaForCausalLM saved by transformers, with an HF fast tokenizer whose
    end-of-text token is `</s>` (as Llama's), not ours."""
    base = load_tokenizer(tokenizer_file)
    base.add_special_tokens(["</s>"])
    vocab = base.get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=kv, max_position_embeddings=128,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=tied,
        eos_token_id=base.token_to_id("</s>"), bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(2)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2) if p.dim() > 1 else p.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    base.encode_special_tokens = False
    PreTrainedTokenizerFast(tokenizer_object=base, eos_token="</s>").save_pretrained(folder)
    return folder


def our_model(
    folder: Path, tokenizer_file: Path, kv: int, tied: bool, bias: bool, **options: object
) -> Path:
    """An exported random GPT (with ModelConfig `options`, the speedrun's); weights scaled up so
    logits are far from uniform (distinct argmaxes: a greedy continuation then tests the
    layout, not ties)."""
    vocab = load_tokenizer(tokenizer_file).get_vocab_size()
    cfg = ModelConfig(
        n_layer=2, n_head=4, n_kv_head=kv, n_embd=64, block_size=64, vocab_size=vocab,
        tie_embeddings=tied, bias=bias, rope_theta=500.0, **options,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(4.0)
    return export_model(model.eval(), cfg, folder, tokenizer_file)
