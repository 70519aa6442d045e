"""HF Llama export and import (model/hf.py) and GGUF export (model/gguf_file.py), checked
against the real `transformers` and `gguf` packages on the CPU (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
)

from model.checkpoint import export_model, load_model
from model.gguf_file import export_gguf
from model.hf import CheckpointError, export_hf, import_hf, to_halves, to_pairs
from model.sft import format_prompt
from model.tokenizer import EOT, end_of_text, load_tokenizer

from .conftest import build_tiny_corpus
from .hf_fixtures import hf_checkpoint, our_model

# (name, n_kv_head, tie_embeddings, bias)
SHAPES = [
    ("mha-tied", 0, True, False),
    ("gqa-untied", 2, False, False),
    ("gqa-tied", 1, True, False),
    ("mha-untied-bias", 0, False, True),
]


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_corpus(tmp_path_factory.mktemp("hf-tokens"), repeats=1) / "tokenizer.json"


@pytest.mark.parametrize(("name", "kv", "tied", "bias"), SHAPES)
def test_export_loads_in_transformers_with_equal_logits_and_greedy_tokens(
    tmp_path: Path, tokenizer_file: Path, name: str, kv: int, tied: bool, bias: bool
) -> None:
    ours_dir = our_model(tmp_path / "ours", tokenizer_file, kv, tied, bias)
    hf_dir = export_hf(ours_dir, tmp_path / "hf")
    ours, cfg = load_model(ours_dir)
    theirs = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    hf_cfg = json.loads((hf_dir / "config.json").read_text())
    assert hf_cfg["num_key_value_heads"] == (kv or 4)
    assert hf_cfg["tie_word_embeddings"] is tied
    assert hf_cfg["max_position_embeddings"] == 64 and hf_cfg["rope_theta"] == 500.0
    ids = torch.randint(0, cfg.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(ids)[0] - theirs(ids).logits).abs().max().item()
    assert diff < 1e-4, f"{name}: logits differ by {diff}"
    prompt = ids[:1, :8]
    mine = ours.generate(prompt, 32, temperature=0)
    hf_out = theirs.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False)
    assert mine.shape == (1, 40) and torch.equal(mine, hf_out), name
    # the tokenizer loads with no custom code and encodes text as ours does
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    text = "The parser returns a list of tokens."
    assert tokenizer.encode(text) == load_tokenizer(ours_dir / "tokenizer.json").encode(text).ids
    assert tokenizer.eos_token == EOT
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folder left


def test_a_chat_export_carries_the_fine_tuning_format(tmp_path: Path, tokenizer_file: Path) -> None:
    ours_dir = our_model(tmp_path / "ours", tokenizer_file, 0, True, False)
    hf_dir = export_hf(ours_dir, tmp_path / "hf", chat=True)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    messages = [{"role": "user", "content": "The parser reads"}]
    templated = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(templated, dict) or hasattr(templated, "keys"):  # BatchEncoding
        templated = templated["input_ids"]
    assert list(templated) == format_prompt(load_tokenizer(ours_dir / "tokenizer.json"), messages)
    generation = json.loads((hf_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"][0] == tokenizer.convert_tokens_to_ids("<|end|>")


def test_rotary_permutation_is_inverted_exactly() -> None:
    t = torch.arange(4 * 16 * 3, dtype=torch.float32).reshape(4 * 16, 3)
    halves = to_halves(t, 4)
    assert torch.equal(halves[:8], t[0:16:2]) and torch.equal(halves[8:16], t[1:16:2])
    assert torch.equal(to_pairs(halves, 4), t)


@pytest.mark.parametrize(("kv", "tied"), [(4, True), (2, False)])
def test_import_gives_equal_logits_and_export_gives_back_identical_tensors(
    tmp_path: Path, tokenizer_file: Path, kv: int, tied: bool
) -> None:
    source = hf_checkpoint(tmp_path / "hf", tokenizer_file, kv, tied)
    imported = import_hf(source, tmp_path / "ours")
    assert imported["model"]["tie_embeddings"] is tied and imported["model"]["mlp_hidden"] == 160
    ours, cfg = load_model(tmp_path / "ours")
    assert cfg.norm_eps == 1e-5 and cfg.n_kv_head == kv
    theirs = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 50), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max().item() < 1e-4
    assert end_of_text(tmp_path / "ours" / "tokenizer.json") == "</s>"
    again = export_hf(tmp_path / "ours", tmp_path / "again")
    original, exported = (
        load_file(source / "model.safetensors"),
        load_file(again / "model.safetensors"),
    )
    assert sorted(original) == sorted(exported)
    for name, tensor in original.items():
        assert torch.equal(tensor, exported[name]), name
    # the imported tokenizer's own settings travel through unchanged
    assert AutoTokenizer.from_pretrained(again).eos_token == "</s>"


def test_bad_checkpoints_are_refused_and_nothing_is_written(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    source = hf_checkpoint(tmp_path / "hf", tokenizer_file, 4, True)
    weights = load_file(source / "model.safetensors")
    out = tmp_path / "out"

    def broken(name: str, tensors: dict | None = None, config: dict | None = None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for f in ("tokenizer.json", "tokenizer_config.json", "config.json"):
            (folder / f).write_bytes((source / f).read_bytes())
        save_file(tensors if tensors is not None else weights, str(folder / "model.safetensors"))
        if config is not None:
            raw = json.loads((source / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps({**raw, **config}))
        return folder

    missing = {k: v for k, v in weights.items() if "layers.1.mlp.up_proj" not in k}
    with pytest.raises(CheckpointError, match=r"missing tensors model\.layers\.1\.mlp\.up_proj"):
        import_hf(broken("missing", missing), out)
    extra = {**weights, "model.layers.9.self_attn.q_proj.weight": torch.zeros(64, 64)}
    with pytest.raises(CheckpointError, match=r"unexpected tensors model\.layers\.9"):
        import_hf(broken("extra", extra), out)
    with pytest.raises(CheckpointError, match="GPT2LMHeadModel model; lmforge imports only"):
        import_hf(broken("gpt2", config={"architectures": ["GPT2LMHeadModel"]}), out)
    small = {k: (v[:100] if "embed_tokens" in k else v) for k, v in weights.items()}
    with pytest.raises(CheckpointError, match="vocab_size .* differs from the embedding's 100"):
        import_hf(broken("vocab", small), out)
    with pytest.raises(CheckpointError, match="tokens but the weights only 100 rows"):
        import_hf(broken("tok", small, config={"vocab_size": 100}), out)
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="exists and is not empty"):
        export_hf(tmp_path / "nothing-needed", out)
    with pytest.raises(CheckpointError, match="exists and is not empty"):
        import_hf(source, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_gguf_export_reads_back_with_the_gguf_reader(
    tmp_path: Path, tokenizer_file: Path, dtype: str
) -> None:
    ours_dir = our_model(tmp_path / "ours", tokenizer_file, 2, False, False)
    path = export_gguf(ours_dir, tmp_path / "gguf", dtype)
    reader = gguf.GGUFReader(str(path))

    def field(key: str):
        return reader.get_field(key).contents()

    assert field("general.architecture") == "llama"
    assert field("llama.context_length") == 64 and field("llama.block_count") == 2
    assert field("llama.attention.head_count") == 4
    assert field("llama.attention.head_count_kv") == 2
    assert field("llama.rope.freq_base") == 500.0 and field("llama.rope.dimension_count") == 16
    tokenizer = load_tokenizer(ours_dir / "tokenizer.json")
    tokens = field("tokenizer.ggml.tokens")
    assert field("tokenizer.ggml.model") == "gpt2" and len(tokens) == tokenizer.get_vocab_size()
    assert all(tokens[i] == t for t, i in tokenizer.get_vocab().items())
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.token_to_id(EOT)
    model, cfg = load_model(ours_dir)
    state = model.state_dict()
    tensors = {t.name: t for t in reader.tensors}
    expected = {"token_embd.weight", "output_norm.weight", "output.weight"}
    for i in range(2):
        expected |= {
            f"blk.{i}.{n}.weight"
            for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                      "ffn_gate", "ffn_up", "ffn_down")
        }  # fmt: skip
    assert set(tensors) == expected
    k_rows = 2 * 16
    pairs = {
        "token_embd.weight": state["tok_emb.weight"],
        "blk.1.attn_q.weight": state["blocks.1.attn.q_proj.weight"],
        "blk.1.attn_k.weight": state["blocks.1.attn.kv_proj.weight"][:k_rows],
        "blk.1.attn_v.weight": state["blocks.1.attn.kv_proj.weight"][k_rows:],
        "blk.0.ffn_up.weight": state["blocks.0.mlp.gate_up.weight"][cfg.hidden_size :],
        "blk.0.attn_norm.weight": state["blocks.0.attn_norm.weight"],
    }
    for name, tensor in pairs.items():
        data = np.asarray(tensors[name].data, dtype=np.float32)
        assert list(tensors[name].shape) == list(reversed(tensor.shape)), name  # ggml order
        tolerance = 0 if dtype == "f32" or tensor.dim() == 1 else 2e-3 * float(tensor.abs().max())
        assert np.abs(data - tensor.numpy()).max() <= tolerance, name


def test_zero_init_proj_only_initialises_so_its_model_exports(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    ours_dir = our_model(tmp_path / "ours", tokenizer_file, 2, False, False, zero_init_proj=True)
    ours, cfg = load_model(ours_dir)
    with torch.no_grad():  # as after training: the projections are no longer zero
        for name, p in ours.named_parameters():
            if name.endswith(("out_proj.weight", "down_proj.weight", "lm_head.weight")):
                p.normal_(0, 0.1)
    trained = export_model(ours, cfg, tmp_path / "trained", tokenizer_file)
    theirs = AutoModelForCausalLM.from_pretrained(export_hf(trained, tmp_path / "hf")).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (dict(qk_norm=True), r"model\.qk_norm = True \(Llama has no RMSNorm of queries"),
        (dict(mlp="relu2"), r"model\.mlp = 'relu2' \(Llama's MLP is gated SwiGLU"),
        (dict(logit_softcap=30.0), r"model\.logit_softcap = 30\.0 \(Llama has no soft cap"),
    ],
)
def test_options_with_no_llama_equivalent_are_refused_by_name(
    tmp_path: Path, tokenizer_file: Path, option: dict, named: str
) -> None:
    ours_dir = our_model(tmp_path / "ours", tokenizer_file, 0, True, False, **option)
    with pytest.raises(CheckpointError, match=r"cannot be exported as an HF LlamaForCausalLM: "):
        export_hf(ours_dir, tmp_path / "hf")
    with pytest.raises(CheckpointError, match=named):
        export_hf(ours_dir, tmp_path / "hf")
    with pytest.raises(CheckpointError, match=r"cannot be exported as GGUF.*" + named):
        export_gguf(ours_dir, tmp_path / "gguf", "f32")
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").iterdir())
    assert not (tmp_path / "gguf").exists() or not any((tmp_path / "gguf").iterdir())
    saved = load_model(ours_dir)[1]  # our own format records the options and loads them
    assert all(getattr(saved, key) == value for key, value in option.items())
