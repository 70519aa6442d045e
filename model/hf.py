"""Hugging Face Llama checkpoints in and out: our model folder <-> a `LlamaForCausalLM` folder.

Our GPT (model/gpt.py) is a Llama: RMSNorm pre-norm, RoPE, grouped-query attention, SwiGLU.
What differs is only how the tensors are laid out, so both directions are exact re-arrangements
(no retraining, no approximation):

- names: `blocks.<i>.attn.q_proj` -> `model.layers.<i>.self_attn.q_proj` and so on (`NAMES`);
- fused projections: our `kv_proj` holds k then v, our `gate_up` gate then up; transformers has
  `k_proj`, `v_proj`, `gate_proj`, `up_proj`;
- rotary layout: we rotate (even, odd) pairs of each head's dimensions (as Meta's original Llama
  and llama.cpp), transformers rotates (first half, second half). So each head's q and k rows
  are permuted: HF row j < D/2 is our row 2j, HF row D/2 + j is our row 2j + 1 (`to_halves`).

Of the speedrun options (model/gpt.py) `zero_init_proj` only initialises, so it exports; a
model with `qk_norm`, `mlp = "relu2"` or a `logit_softcap` has no Llama equivalent and export
is refused, naming the option (`refuse_without_llama_equivalent`).

An HF folder needs no custom code: `config.json` (LlamaForCausalLM), `model.safetensors` in
transformers' names (float32), `tokenizer.json` + `tokenizer_config.json`
(PreTrainedTokenizerFast, eos `<|endoftext|>`, pad `<|pad|>`; a `chat_template` for a fine-tuned
chat model) and `generation_config.json`. transformers itself is not imported here.

An imported checkpoint becomes an ordinary model folder (model/checkpoint.py) with the HF
`tokenizer_config.json` kept beside the tokenizer (its eos token ends documents, and exporting
again gives the same file) and `source.json` (where it came from).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from model.checkpoint import (
    CONFIG,
    TOKENIZER,
    WEIGHTS,
    export_model,
    load_model,
    model_with_weights,
)
from model.files import sha256_file
from model.gpt import GPT, ModelConfig
from model.tokenizer import CHAT_TOKENS, EOT, PAD, TOKENIZER_CONFIG, load_tokenizer, token_text

ARCHITECTURE = "LlamaForCausalLM"
GENERATION_CONFIG = "generation_config.json"
SOURCE = "source.json"
INDEX = "model.safetensors.index.json"

# (ours, transformers') per block, without the `.weight` / `.bias` suffix; the fused
# projections are split below.
NAMES = {
    "attn_norm": "input_layernorm",
    "attn.q_proj": "self_attn.q_proj",
    "attn.out_proj": "self_attn.o_proj",
    "mlp_norm": "post_attention_layernorm",
    "mlp.down_proj": "mlp.down_proj",
}

# The chat format of model/sft.py as a Jinja template: `<|role|>` content `<|end|>` per message,
# then `<|assistant|>` when a reply is wanted.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted; the message names what is wrong and what to do."""


def rotary_order(head_dim: int) -> torch.Tensor:
    """For each HF row of one head, the row of ours it comes from: evens, then odds."""
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def to_halves(t: torch.Tensor, heads: int) -> torch.Tensor:
    """q or k rows (weight or bias) from our pair layout to transformers' half layout."""
    head_dim = t.shape[0] // heads
    per_head = t.reshape(heads, head_dim, *t.shape[1:])
    return per_head[:, rotary_order(head_dim)].reshape(t.shape)


def to_pairs(t: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of `to_halves`."""
    head_dim = t.shape[0] // heads
    per_head = t.reshape(heads, head_dim, *t.shape[1:])
    return per_head[:, torch.argsort(rotary_order(head_dim))].reshape(t.shape)


def _suffixes(cfg: ModelConfig) -> tuple[str, ...]:
    return ("weight", "bias") if cfg.bias else ("weight",)


def to_hf_state(cfg: ModelConfig, ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict (parameter names of GPT) as transformers' LlamaForCausalLM state dict."""
    heads, kv_heads = cfg.n_head, cfg.n_kv_head or cfg.n_head
    kv_rows = kv_heads * (cfg.n_embd // cfg.n_head)
    hf = {
        "model.embed_tokens.weight": ours["tok_emb.weight"],
        "model.norm.weight": ours["norm.weight"],
    }
    if not cfg.tie_embeddings:
        hf["lm_head.weight"] = ours["lm_head.weight"]
    for i in range(cfg.n_layer):
        a, b = f"blocks.{i}.", f"model.layers.{i}."
        for mine, theirs in NAMES.items():
            hf[f"{b}{theirs}.weight"] = ours[f"{a}{mine}.weight"]
        for end in _suffixes(cfg):
            if end == "bias":  # the norms have no bias
                for mine, theirs in NAMES.items():
                    if not mine.endswith("norm"):
                        hf[f"{b}{theirs}.bias"] = ours[f"{a}{mine}.bias"]
            hf[f"{b}self_attn.q_proj.{end}"] = to_halves(ours[f"{a}attn.q_proj.{end}"], heads)
            kv = ours[f"{a}attn.kv_proj.{end}"]
            hf[f"{b}self_attn.k_proj.{end}"] = to_halves(kv[:kv_rows], kv_heads)
            hf[f"{b}self_attn.v_proj.{end}"] = kv[kv_rows:]
            gate, up = ours[f"{a}mlp.gate_up.{end}"].chunk(2, dim=0)
            hf[f"{b}mlp.gate_proj.{end}"], hf[f"{b}mlp.up_proj.{end}"] = gate, up
    return {name: t.contiguous() for name, t in hf.items()}


def from_hf_state(cfg: ModelConfig, hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' LlamaForCausalLM state dict as ours; refuses missing, extra or misshapen
    tensors, naming them."""
    heads, kv_heads = cfg.n_head, cfg.n_kv_head or cfg.n_head
    with torch.device("meta"):  # the names and shapes cfg implies, nothing allocated
        expected = to_hf_state(cfg, GPT(cfg).state_dict())
    given = dict(hf)
    if cfg.tie_embeddings and "lm_head.weight" in given:  # some tied checkpoints store it anyway
        head = given.pop("lm_head.weight")
        if not torch.equal(head, given.get("model.embed_tokens.weight", head)):
            raise CheckpointError(
                "config.json says tie_word_embeddings = true but lm_head.weight differs from "
                "model.embed_tokens.weight: fix tie_word_embeddings in config.json"
            )
    given = {k: v for k, v in given.items() if not k.endswith("rotary_emb.inv_freq")}  # buffers
    missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"the weights do not match config.json's {ARCHITECTURE} shape: missing tensors "
            f"{_listed(missing)}, unexpected tensors {_listed(extra)}; the checkpoint is "
            "incomplete or its config.json describes another model"
        )
    wrong = [
        f"{name} {tuple(given[name].shape)} (expected {tuple(t.shape)})"
        for name, t in expected.items()
        if given[name].shape != t.shape
    ]
    if wrong:
        raise CheckpointError(
            f"tensors whose shape does not fit config.json: {_listed(wrong)}; the config and "
            "the weights come from different models"
        )
    g = {name: t.float() for name, t in given.items()}
    ours = {"tok_emb.weight": g["model.embed_tokens.weight"], "norm.weight": g["model.norm.weight"]}
    ours["lm_head.weight"] = g.get("lm_head.weight", ours["tok_emb.weight"])
    for i in range(cfg.n_layer):
        a, b = f"blocks.{i}.", f"model.layers.{i}."
        for mine, theirs in NAMES.items():
            ours[f"{a}{mine}.weight"] = g[f"{b}{theirs}.weight"]
            if cfg.bias and not mine.endswith("norm"):
                ours[f"{a}{mine}.bias"] = g[f"{b}{theirs}.bias"]
        for end in _suffixes(cfg):
            ours[f"{a}attn.q_proj.{end}"] = to_pairs(g[f"{b}self_attn.q_proj.{end}"], heads)
            k = to_pairs(g[f"{b}self_attn.k_proj.{end}"], kv_heads)
            ours[f"{a}attn.kv_proj.{end}"] = torch.cat((k, g[f"{b}self_attn.v_proj.{end}"]))
            gate, up = g[f"{b}mlp.gate_proj.{end}"], g[f"{b}mlp.up_proj.{end}"]
            ours[f"{a}mlp.gate_up.{end}"] = torch.cat((gate, up))
    return ours


def _listed(names: list[str], most: int = 6) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def hf_config(cfg: ModelConfig, eos_id: int | None, pad_id: int | None) -> dict[str, Any]:
    """A LlamaForCausalLM `config.json` for `cfg`."""
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.hidden_size,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head or cfg.n_head,
        "head_dim": cfg.n_embd // cfg.n_head,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.block_size,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,  # transformers < 5 and llama.cpp's converter read this
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_scaling": None,
        "attention_bias": cfg.bias,
        "mlp_bias": cfg.bias,
        "attention_dropout": 0.0,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": None,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def model_config_from_hf(values: Mapping[str, Any], where: Path | str) -> ModelConfig:
    """The ModelConfig of an HF `config.json` (read from `where`); refuses anything but a plain
    Llama: another architecture, rope scaling, another activation, a head size of its own."""
    architectures = list(values.get("architectures") or [])
    model_type = values.get("model_type")
    if architectures != [ARCHITECTURE] or model_type not in ("llama", None):
        found = ", ".join(architectures) or f"model_type {model_type!r}"
        raise CheckpointError(
            f"{where} describes a {found} model; lmforge imports only {ARCHITECTURE} checkpoints "
            "(Llama, SmolLM, TinyLlama and other Llama-architecture models)"
        )
    rope = values.get("rope_parameters") or {}
    scaling = values.get("rope_scaling") or (
        rope if rope.get("rope_type", "default") != "default" else None
    )
    if scaling:
        raise CheckpointError(
            f"{where}: rope scaling {scaling} is not supported (model/gpt.py has plain RoPE); "
            "import a checkpoint without rope_scaling"
        )
    act = values.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(f"{where}: hidden_act {act!r}; a Llama MLP is SwiGLU ('silu')")
    hidden, heads = int(values["hidden_size"]), int(values["num_attention_heads"])
    head_dim = values.get("head_dim") or hidden // heads
    if head_dim * heads != hidden:
        raise CheckpointError(
            f"{where}: head_dim {head_dim} x {heads} heads != hidden_size {hidden}; model/gpt.py "
            "needs head_dim = hidden_size / num_attention_heads"
        )
    if bool(values.get("attention_bias", False)) != bool(values.get("mlp_bias", False)):
        raise CheckpointError(
            f"{where}: attention_bias and mlp_bias differ; model/gpt.py has biases in every "
            "linear layer or in none"
        )
    try:
        return ModelConfig(
            n_layer=int(values["num_hidden_layers"]),
            n_head=heads,
            n_kv_head=int(values.get("num_key_value_heads") or heads),
            n_embd=hidden,
            block_size=int(values["max_position_embeddings"]),
            vocab_size=int(values["vocab_size"]),
            bias=bool(values.get("attention_bias", False)),
            rope_theta=float(rope.get("rope_theta", values.get("rope_theta", 10000.0))),
            tie_embeddings=bool(values.get("tie_word_embeddings", True)),
            mlp_hidden=int(values["intermediate_size"]),
            norm_eps=float(values.get("rms_norm_eps", 1e-6)),
        )
    except KeyError as missing:
        raise CheckpointError(f"{where} has no {missing.args[0]!r}: not a Llama config") from None


def tokenizer_config(block_size: int, vocab: Mapping[str, int], chat: bool) -> dict[str, Any]:
    """`tokenizer_config.json` for one of our tokenizers (byte-level BPE, no BOS)."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOT,
        "pad_token": PAD if PAD in vocab else None,
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": block_size,
    }
    if chat:
        missing = [t for t in CHAT_TOKENS if t not in vocab]
        if missing:
            raise CheckpointError(
                f"a chat export needs the chat markers; the tokenizer lacks {missing}"
            )
        config["chat_template"] = CHAT_TEMPLATE
    return config


def refuse_without_llama_equivalent(cfg: ModelConfig, target: str) -> None:
    """Raise CheckpointError naming the model options that a transformers Llama (or llama.cpp's
    llama, `target`) cannot compute: exported anyway, it would load and give other logits."""
    reasons = {
        "qk_norm": (cfg.qk_norm, "Llama has no RMSNorm of queries and keys"),
        "mlp": (cfg.mlp != "swiglu", "Llama's MLP is gated SwiGLU, not the non-gated ReLU²"),
        "logit_softcap": (cfg.logit_softcap > 0, "Llama has no soft cap of the logits"),
    }
    found = [
        f"model.{key} = {getattr(cfg, key)!r} ({why})" for key, (on, why) in reasons.items() if on
    ]
    if found:
        raise CheckpointError(
            f"this model cannot be exported as {target}: {'; '.join(found)}. Its options have "
            "no equivalent there, so the exported model would compute other logits; keep it "
            "in our format (model.safetensors + config.json), or train with those options off"
        )


def export_hf(model_dir: Path | str, out_dir: Path | str, chat: bool = False) -> Path:
    """Write our exported model folder `model_dir` as an HF LlamaForCausalLM folder `out_dir`
    (which must not exist or be empty); `chat`: with the chat template of model/sft.py."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    refuse_non_empty(out_dir)
    model, cfg = load_model(model_dir)
    refuse_without_llama_equivalent(cfg, "an HF LlamaForCausalLM")
    tokenizer_path = model_dir / TOKENIZER
    if not tokenizer_path.is_file():
        raise CheckpointError(f"{tokenizer_path} is missing: an HF folder needs its tokenizer")
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise CheckpointError(
            f"{tokenizer_path} has {tokenizer.get_vocab_size()} tokens but the weights only "
            f"{cfg.vocab_size} rows: the tokenizer does not belong to this model"
        )
    with staging(out_dir) as temp:
        state = {k: v.detach().float() for k, v in model.state_dict().items()}
        save_file(to_hf_state(cfg, state), str(temp / WEIGHTS), metadata={"format": "pt"})
        kept = model_dir / TOKENIZER_CONFIG  # an imported model's own, kept as it came
        if kept.is_file():
            tok_cfg = json.loads(kept.read_text())
            if chat and "chat_template" not in tok_cfg:
                tok_cfg["chat_template"] = CHAT_TEMPLATE
        else:
            tok_cfg = tokenizer_config(cfg.block_size, tokenizer.get_vocab(), chat)
        eos_id = tokenizer.token_to_id(str(token_text(tok_cfg.get("eos_token")) or EOT))
        pad_id = tokenizer.token_to_id(str(token_text(tok_cfg.get("pad_token")) or PAD))
        if chat:  # a fine-tuned model ends its answer with <|end|>
            eos_ids = [
                i for i in (tokenizer.token_to_id(t) for t in ("<|end|>", EOT)) if i is not None
            ]
        else:
            eos_ids = [eos_id] if eos_id is not None else []
        hf = hf_config(cfg, eos_id, pad_id)
        (temp / CONFIG).write_text(json.dumps(hf, indent=2) + "\n")
        shutil.copyfile(tokenizer_path, temp / TOKENIZER)
        (temp / TOKENIZER_CONFIG).write_text(json.dumps(tok_cfg, indent=2) + "\n")
        generation = {
            "eos_token_id": eos_ids[0] if len(eos_ids) == 1 else eos_ids,
            "pad_token_id": pad_id,
        }
        (temp / GENERATION_CONFIG).write_text(json.dumps(generation, indent=2) + "\n")
    return out_dir


def refuse_non_empty(out_dir: Path) -> None:
    """Refuse to write into an existing file or a folder that holds anything."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CheckpointError(
            f"{out_dir} exists and is not empty: export into a new or empty folder (nothing "
            "was written)"
        )


class staging:
    """A hidden temporary folder beside `out_dir`, renamed to it when the block succeeds and
    removed when it fails: a reader never sees half a folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.temp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> Path:
        self.temp.mkdir(parents=True)
        return self.temp

    def __exit__(self, kind: type | None, *_: object) -> None:
        if kind is not None:
            shutil.rmtree(self.temp, ignore_errors=True)
            return
        if self.out_dir.is_dir():
            self.out_dir.rmdir()  # empty, checked before
        self.temp.rename(self.out_dir)


def read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an HF folder's safetensors (one file, or shards listed in the index)."""
    single, index = hf_dir / WEIGHTS, hf_dir / INDEX
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif single.is_file():
        files = [WEIGHTS]
    else:
        others = sorted(p.name for p in hf_dir.glob("*.bin")) + sorted(
            p.name for p in hf_dir.glob("*.pth")
        )
        raise CheckpointError(
            f"{hf_dir} has no {WEIGHTS} or {INDEX}"
            + (
                f" (it has {others}: pickled weights are not read; save as safetensors)"
                if others
                else ""
            )
        )
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(hf_dir / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[key] = handle.get_tensor(key)
    return tensors


def import_hf(hf_dir: Path | str, out_dir: Path | str) -> dict[str, Any]:
    """Convert the HF LlamaForCausalLM folder `hf_dir` into our model folder `out_dir` (new or
    empty); returns what was imported. Everything is checked before anything is written."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    config_path = hf_dir / CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing: give the folder of an HF checkpoint")
    refuse_non_empty(out_dir)
    cfg = model_config_from_hf(json.loads(config_path.read_text()), config_path)
    tokenizer_path = hf_dir / TOKENIZER
    if not tokenizer_path.is_file():
        raise CheckpointError(
            f"{tokenizer_path} is missing: lmforge needs the fast tokenizer's tokenizer.json "
            "(transformers writes it with AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR))"
        )
    tokenizer = load_tokenizer(tokenizer_path)
    weights = read_hf_weights(hf_dir)
    embed = weights.get("model.embed_tokens.weight")
    if embed is not None and embed.shape[0] != cfg.vocab_size:
        raise CheckpointError(
            f"config.json's vocab_size {cfg.vocab_size} differs from the embedding's "
            f"{embed.shape[0]} rows: the config and the weights come from different models"
        )
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise CheckpointError(
            f"{tokenizer_path} has {tokenizer.get_vocab_size()} tokens but the weights only "
            f"{cfg.vocab_size} rows (ids past the last row have no embedding): the tokenizer "
            "does not belong to these weights"
        )
    ours = from_hf_state(cfg, weights)
    model = model_with_weights(cfg, ours)  # also checks that every parameter is there
    with staging(out_dir) as temp:
        # weights, config.json, tokenizer.json and the tokenizer_config.json beside it
        export_model(model, cfg, temp, tokenizer_path)
        source = {
            "format": "hf",
            "architecture": ARCHITECTURE,
            "path": str(hf_dir.resolve()),
            "files": {p.name: sha256_file(p) for p in sorted(hf_dir.glob("*.safetensors"))},
            "tokenizer_vocab_size": tokenizer.get_vocab_size(),
            "num_params": model.num_params(),
        }
        (temp / SOURCE).write_text(json.dumps(source, indent=2) + "\n")
    return {"model_dir": str(out_dir), "model": dataclasses.asdict(cfg), **source}
