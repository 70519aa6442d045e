"""Our model folder as a GGUF file (llama.cpp's format), written with the `gguf` package.

Architecture `llama`: llama.cpp's tensor names (`token_embd`, `blk.<i>.attn_q`, ...), the
hyper-parameters as `llama.*` keys and the byte-level BPE tokenizer as `tokenizer.ggml.*`
(model `gpt2`: tokens, merges, token types; the pre-tokenizer `gpt-2`, the GPT-2 split
pattern our ByteLevel pre-tokenizer uses). llama.cpp's llama rotates (even, odd) pairs as
model/gpt.py does (transformers' converter permutes HF's half layout back to it), so q and k are
written as they are, unpermuted. 2-D weights in f32 or f16; norms always in f32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model.checkpoint import TOKENIZER, load_model
from model.hf import CheckpointError, refuse_non_empty, refuse_without_llama_equivalent, staging
from model.tokenizer import PAD, end_of_text

GgufType = Literal["f32", "f16"]


def gguf_names(n_layer: int, tied: bool) -> dict[str, str]:
    """Our parameter name -> llama.cpp's tensor name (fused projections split below)."""
    names = {"tok_emb.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}
    if not tied:
        names["lm_head.weight"] = "output.weight"
    for i in range(n_layer):
        a, b = f"blocks.{i}.", f"blk.{i}."
        names |= {
            f"{a}attn_norm.weight": f"{b}attn_norm.weight",
            f"{a}attn.q_proj.weight": f"{b}attn_q.weight",
            f"{a}attn.out_proj.weight": f"{b}attn_output.weight",
            f"{a}mlp_norm.weight": f"{b}ffn_norm.weight",
            f"{a}mlp.down_proj.weight": f"{b}ffn_down.weight",
        }
    return names


def gguf_tensors(model: Any) -> dict[str, np.ndarray]:
    """llama.cpp's tensor name -> float32 array, from our GPT."""
    cfg = model.cfg
    refuse_without_llama_equivalent(cfg, "GGUF (llama.cpp's llama architecture)")
    if cfg.bias:
        raise CheckpointError(
            "model.bias = true: llama.cpp's llama architecture has no linear-layer biases; "
            "export this model as --format hf instead"
        )
    state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    tensors = {
        theirs: state[mine] for mine, theirs in gguf_names(cfg.n_layer, cfg.tie_embeddings).items()
    }
    kv_rows = (cfg.n_kv_head or cfg.n_head) * (cfg.n_embd // cfg.n_head)
    for i in range(cfg.n_layer):
        kv = state[f"blocks.{i}.attn.kv_proj.weight"]
        tensors[f"blk.{i}.attn_k.weight"], tensors[f"blk.{i}.attn_v.weight"] = (
            kv[:kv_rows],
            kv[kv_rows:],
        )
        gate, up = np.split(state[f"blocks.{i}.mlp.gate_up.weight"], 2, axis=0)
        tensors[f"blk.{i}.ffn_gate.weight"], tensors[f"blk.{i}.ffn_up.weight"] = gate, up
    return {name: np.ascontiguousarray(t) for name, t in sorted(tensors.items())}


def tokenizer_fields(tokenizer_path: Path) -> dict[str, Any]:
    """Tokens (by id), merges and token types of a byte-level BPE tokenizer.json."""
    raw = json.loads(tokenizer_path.read_text())
    model = raw.get("model", {})
    if model.get("type") != "BPE":
        raise CheckpointError(
            f"{tokenizer_path} is a {model.get('type')} tokenizer; GGUF export writes byte-level "
            "BPE tokenizers (those the tokenize step trains)"
        )
    vocab: dict[str, int] = dict(model["vocab"])
    special = set()
    for added in raw.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["id"])
    tokens = [""] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    types = [3 if i in special else 1 for i in range(len(tokens))]  # CONTROL, NORMAL
    return {"tokens": tokens, "merges": merges, "types": types, "ids": vocab}


def export_gguf(model_dir: Path | str, out_dir: Path | str, dtype: GgufType = "f32") -> Path:
    """Write `<out_dir>/model.gguf` (out_dir new or empty) from our model folder; returns it."""
    try:
        import gguf
    except ImportError:
        raise CheckpointError(
            "GGUF export needs the gguf package, in lmforge's `hf` extra: "
            "pip install -c constraints.txt -e '.[hf]' (or make setup-hf)"
        ) from None

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    refuse_non_empty(out_dir)
    model, cfg = load_model(model_dir)
    fields = tokenizer_fields(model_dir / TOKENIZER)
    if len(fields["tokens"]) > cfg.vocab_size:
        raise CheckpointError(
            f"{model_dir / TOKENIZER} has {len(fields['tokens'])} tokens but the weights only "
            f"{cfg.vocab_size} rows: the tokenizer does not belong to this model"
        )
    tokens = fields["tokens"] + [
        f"<|unused{i}|>" for i in range(cfg.vocab_size - len(fields["tokens"]))
    ]
    types = fields["types"] + [5] * (cfg.vocab_size - len(fields["types"]))  # UNUSED
    tensors = gguf_tensors(model)
    with staging(out_dir) as temp:
        path = temp / "model.gguf"
        writer = gguf.GGUFWriter(str(path), arch="llama")
        writer.add_name(model_dir.name)
        writer.add_context_length(cfg.block_size)
        writer.add_embedding_length(cfg.n_embd)
        writer.add_block_count(cfg.n_layer)
        writer.add_feed_forward_length(cfg.hidden_size)
        writer.add_head_count(cfg.n_head)
        writer.add_head_count_kv(cfg.n_kv_head or cfg.n_head)
        writer.add_rope_dimension_count(cfg.n_embd // cfg.n_head)
        writer.add_rope_freq_base(cfg.rope_theta)
        writer.add_layer_norm_rms_eps(cfg.norm_eps)
        writer.add_vocab_size(cfg.vocab_size)
        file_type = gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
        writer.add_file_type(file_type)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(fields["merges"])
        ids = fields["ids"]
        eos = ids[end_of_text(model_dir / TOKENIZER)]  # an imported model's own, else ours
        writer.add_eos_token_id(eos)
        writer.add_eot_token_id(eos)
        if PAD in ids:
            writer.add_pad_token_id(ids[PAD])
        writer.add_add_bos_token(False)
        for name, array in tensors.items():
            two_d = array.ndim == 2 and dtype == "f16"
            writer.add_tensor(name, array.astype(np.float16) if two_d else array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_dir / "model.gguf"
