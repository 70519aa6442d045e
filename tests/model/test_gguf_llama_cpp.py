"""Our GGUF export run by llama.cpp itself (llama-cpp-python): the same logits and greedy
tokens as our GPT. Skipped where llama-cpp-python is not installed: the registry has it only as
source (a CMake build of llama.cpp, ~15 minutes on 2 cores), so `make test` does not build it;
`pip install llama-cpp-python==0.3.36` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_model
from model.gguf_file import export_gguf

from .conftest import build_tiny_corpus
from .hf_fixtures import our_model

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


@pytest.mark.parametrize(("kv", "tied"), [(0, True), (2, False)])
def test_llama_cpp_runs_our_gguf_with_our_logits_and_greedy_tokens(
    tmp_path: Path, kv: int, tied: bool
) -> None:
    tokenizer = build_tiny_corpus(tmp_path / "tokens", repeats=1) / "tokenizer.json"
    ours_dir = our_model(tmp_path / "ours", tokenizer, kv, tied, False)
    path = export_gguf(ours_dir, tmp_path / "gguf", "f32")
    ours, cfg = load_model(ours_dir)
    # f32 keys and values in its cache (its default, f16, moves the logits by ~1e-3)
    llm = llama_cpp.Llama(
        str(path), n_ctx=cfg.block_size, logits_all=True, verbose=False, type_k=0, type_v=0
    )
    prompt = torch.randint(0, cfg.vocab_size, (1, 8), generator=torch.Generator().manual_seed(4))
    llm.eval(prompt[0].tolist())
    theirs = np.asarray(llm.scores[: prompt.shape[1]], dtype=np.float32)
    with torch.no_grad():
        mine = ours(prompt)[0][0].numpy()
    assert np.abs(mine - theirs).max() < 1e-4
    llm.reset()
    generated = []
    for token in llm.generate(prompt[0].tolist(), temp=0.0, top_k=1, reset=True):
        generated.append(token)
        if len(generated) == 32:
            break
    expected = ours.generate(prompt, 32, temperature=0)[0, 8:].tolist()
    assert generated == expected
