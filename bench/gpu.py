"""The GPU check: throughput and MFU, exact resume after a kill, fp16 and offload, the pipeline.

Five parts, each through the project's real paths, each in its own subprocess with its own
time cap (a part that fails or runs out of time is reported and the next one runs), all of
them under 8 minutes on one GPU:
  throughput  configs/gpt2-124m.toml (bf16, ZeRO 2, train.compile=true, one rank) through
              model.launch.launch_training (the real `deepspeed` launcher over model/train.py)
              for a bounded number of steps on random-token shards written here; tokens/s and
              MFU from metrics.jsonl's later log steps (the compile warm-up steps left out),
              MFU against the GPU's dense bf16 peak (a small table by device name, else a
              bf16 matmul measured here, model/peak_flops.py). Anchors printed beside it:
              nanoGPT ~30% MFU (A100, quoted), llm.c ~50%; target >= 45%.
  resume      configs/small.toml (bf16, ZeRO 2) with checkpoint_every: an uninterrupted run,
              and a run whose launcher process group is SIGKILLed mid-run, then resumed (as
              tests/model/test_train.py::test_sigkilled_run_resumes_bit_identically does on
              CPU); the per-step losses after the resume point compared to the uninterrupted
              run's (equal count, max |diff|), beside the same comparison before the kill (the
              run-to-run noise of the kernels). The project has no determinism setting, so the
              ranks get torch.use_deterministic_algorithms(True, warn_only=True) and
              CUBLAS_WORKSPACE_CONFIG from a sitecustomize.py of this check's own
              (--no-deterministic: without).
  fp16        what CPU ranks cannot test, on configs/small.toml (ZeRO 2, one rank, 30 steps, a
              checkpoint at the end) over random tokens from a 63-id slice of the vocabulary
              (so the loss can fall), three runs side by side through launch_training:
              - fp16 (dynamic loss scaling from 2^16, model/engine.py) with two overflows forced
                at steps 10-11 (model/faults.py spike_steps, factor 1e9; DeepSpeed's hysteresis
                of 2 lowers the scale at the second): first vs last loss, train_summary.json's
                health and guard counts (model/guard.py counts a step the fp16 scaler skipped
                with a finite loss as guard.scaler_skips, not as a bad step),
                the guard's skipped steps from the log (any besides 10-11 are the scaler's own),
                and from the saved checkpoint mp_rank_00_model_states.pt's skipped_steps and the
                ZeRO *_optim_states.pt's optimizer_state_dict["loss_scaler"] (cur_scale below
                2^16 once it acted). The --cpu-smoke reports it skipped: fp16 needs a GPU.
              - ZeRO-Offload (train.offload_optimizer=true, bf16) beside the same run without:
                first vs last loss, the device of the checkpoint's fp32 partitions and Adam
                state (cpu with offload), the offload setting the engine saved, and each
                rank's peak torch.cuda.max_memory_allocated (a sitecustomize.py of this check's
                own writes it next to the run's job.json when the rank exits; not on CPU).
  recipe      the old defaults and the speedrun recipe (issue #22) side by side on the
              gpt2-124m shape for a fixed number of tokens: bench/train_quality.py --recipe both
              --steps N (bf16, ZeRO 2, one rank, tinyshakespeare, BPE 8192, batch 16 x 1024),
              validation bits per byte and tokens/s of each.
  pipeline    `lmforge run --config configs/tiny.toml` in a fresh work dir under a temp folder
              (Spark, Prefect and MLflow embedded; training on the GPU): exit code, wall time,
              the registered model. Skipped, saying why, without java or the pipeline's Python
              packages (pyspark, prefect, mlflow, ...).
Prints a table at the end and writes bench/results/gpu.json (--cpu-smoke:
bench/results/gpu_cpu_smoke.json).

Needs a CUDA build of torch (`python -c "import torch; print(torch.version.cuda)"` prints a
version, not None) and deepspeed; it checks at the start. constraints.txt pins torch==2.13.0,
which the development machines resolve to their CPU wheel (2.13.0+cpu): that one is wrong on a
GPU machine. On a GPU machine with PyPI (whose Linux x86-64 torch wheel is a CUDA build):
    make setup
    .venv/bin/python -c "import torch; assert torch.cuda.is_available(), torch.version.cuda"
    .venv/bin/python bench/gpu.py
and if the assert fails (a +cpu wheel came in), first replace it with a CUDA build, e.g.
    .venv/bin/pip uninstall -y torch && .venv/bin/pip install --no-cache-dir torch==2.13.0
On a GPU machine without the internet whose python3 already holds a CUDA torch (the lent
H200), carry the missing wheels (bench/README.md lists them for parts 1-3) and run
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu.py
On a machine without a CUDA GPU it prints why and exits 0 (so `make bench` goes on). To check
the script itself on CPU (DS_ACCELERATOR=cpu, tiny models, few steps, no torch.compile; the
fp16 part's offload pair tiny, its fp16 run skipped; the tiny pipeline as is; a few minutes on
2 cores):
    .venv/bin/python bench/gpu.py --cpu-smoke
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
PARTS = ("throughput", "resume", "fp16", "recipe", "pipeline")
# Seconds per part on the GPU (their sum and the setup stay under TOTAL_S) and in the smoke.
CAPS_GPU = {"throughput": 200, "resume": 95, "fp16": 70, "recipe": 150, "pipeline": 95}
CAPS_SMOKE = {"throughput": 300, "resume": 300, "fp16": 300, "recipe": 300, "pipeline": 480}
TOTAL_S = 620  # the whole check, setup included: under 10.5 minutes (the recipe part: 150 s)
ANCHORS = "nanoGPT ~30% MFU (A100, quoted) | llm.c ~50% | target >= 45%"
TARGET_MFU = 0.45
# Dense bf16 tensor-core peaks (datasheet, no sparsity), first match of the device name wins.
PEAKS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
]
DETERMINISTIC_SITE = """\
# Written by bench/gpu.py for its resume part: deterministic kernels in the training ranks.
import os

if os.environ.get("LOCAL_RANK") is not None and os.environ.get("LMFORGE_BENCH_DETERMINISTIC"):
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
"""


# --- small helpers ---------------------------------------------------------------------------


def clean(value: Any) -> Any:
    """`value` with NaN and infinities as None, so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (the deepspeed launcher starts its own session,
    so its process group is not ours: the tree is found by parenthood, before killing)."""
    for _ in range(2):  # a second pass for anything started while the first one ran
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in file order (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def losses(records: list[dict[str, Any]]) -> dict[int, float]:
    """step -> train loss; a step logged twice (before a kill and after the resume) keeps the
    last, as tests/model/test_train.py reads it."""
    return {r["step"]: r["train_loss"] for r in records if "train_loss" in r}


def flops_text(flops: float) -> str:
    """FLOP/s in the unit that suits: TFLOP/s on a GPU, GFLOP/s on a CPU."""
    return f"{flops / 1e12:.0f} TFLOP/s" if flops >= 1e12 else f"{flops / 1e9:.1f} GFLOP/s"


def dense_bf16_peak(device_name: str) -> float:
    """The datasheet dense bf16 peak of a GPU by name, 0.0 when it is not in the table."""
    for key, flops in PEAKS:
        if key.lower() in device_name.lower():
            return flops
    return 0.0


def versions() -> dict[str, Any]:
    import torch

    found = {"python": sys.version.split()[0], "torch": torch.__version__}
    found["torch_cuda"] = torch.version.cuda
    try:
        import deepspeed

        found["deepspeed"] = deepspeed.__version__
    except Exception as err:  # reported, not fatal here: main() checks before the parts
        found["deepspeed"] = f"not importable: {err}"
    return found


# --- random-token shards in the model/token_format layout -------------------------------------


def write_split(
    folder: Path, split: str, tokens: int, vocab: int, eot: int, seed: int, span: int = 0
) -> dict:
    """One shard (+ .idx) of `tokens` uniformly random ids (all of the vocabulary, or with
    `span` only ids 1..span-1: a loss that can fall), documents of 4096 tokens each ending with
    `eot`; returns its manifest entry (as tests/model/conftest.py writes them)."""
    from model.token_format import INDEX_DTYPE, ShardHeader, index_path

    doc_len = 4096
    rng = np.random.default_rng(seed)
    ids = rng.integers(1 if span else 0, span or vocab, size=tokens, dtype=np.int64)
    ids[ids == eot] = (eot + 1) % vocab  # eot only where a document ends
    ids[doc_len - 1 :: doc_len] = eot
    ids[-1] = eot
    data = ids.astype("<u2" if vocab <= 1 << 16 else "<u4")
    offsets = np.arange(0, tokens, doc_len, dtype=INDEX_DTYPE)
    name = f"{split}-p00000-00000.bin"
    path = folder / name
    header = ShardHeader(data.dtype.itemsize, vocab, tokens, len(offsets), eot)
    with path.open("wb") as handle:
        handle.write(header.to_bytes())
        handle.write(data.tobytes())
    offsets.tofile(index_path(path))
    return {
        "file": name,
        "index": index_path(path).name,
        "split": split,
        "tokens": tokens,
        "docs": len(offsets),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "index_sha256": hashlib.sha256(offsets.tobytes()).hexdigest(),
    }


def build_shards(
    folder: Path, vocab: int, train_tokens: int, val_tokens: int, span: int = 0
) -> Path:
    """A tokenize output folder (tokenizer.json, shards, manifest.json) of random tokens (see
    write_split for `span`). The tokenizer is a word-level one with exactly `vocab` entries (id
    0 the end-of-text token), so the exported model folders are consistent; it is never used
    to encode text here."""
    from tokenizers import Tokenizer, models

    from model.token_format import FORMAT_VERSION

    folder.mkdir(parents=True, exist_ok=True)
    words = {"<|endoftext|>": 0} | {f"t{i}": i for i in range(1, vocab)}
    Tokenizer(models.WordLevel(words, unk_token="<|endoftext|>")).save(
        str(folder / "tokenizer.json")
    )
    entries = [
        write_split(folder, "train", train_tokens, vocab, 0, seed=1, span=span),
        write_split(folder, "val", val_tokens, vocab, 0, seed=2, span=span),
    ]
    manifest = {
        "format_version": FORMAT_VERSION,
        "token_bytes": 2 if vocab <= 1 << 16 else 4,
        "dtype": "uint16" if vocab <= 1 << 16 else "uint32",
        "vocab_size": vocab,
        "eot_id": 0,
        "tokenizer": "tokenizer.json",
        "order": "random tokens (bench/gpu.py)",
        "shards": entries,
        "totals": {
            e["split"]: {"shards": 1, "docs": e["docs"], "tokens": e["tokens"]} for e in entries
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


# --- jobs: the preset, then overrides, through tasks.config as `lmforge --set` does ----------


def make_job(preset: str, overrides: list[str], data_dir: Path, out_dir: Path) -> dict[str, Any]:
    """The job.json the train step writes (tasks/train/tracked_launch.py), without MLflow."""
    from tasks.config import load_config

    config = load_config(ROOT / "configs" / preset, overrides)
    model = config.model
    if model.vocab_size == 0:  # as the train step: the tokenizer's size
        manifest = json.loads((data_dir / "manifest.json").read_text())
        model = dataclasses.replace(model, vocab_size=int(manifest["vocab_size"]))
    return {
        "model": dataclasses.asdict(model),
        "train": dataclasses.asdict(config.train),
        "data_dir": str(data_dir),
        "out_dir": str(out_dir),
        "tracking": {"uri": "", "run_id": ""},
    }


class LauncherLog:
    """A launch_training `on_line`: every line to a log file, the step lines to the console."""

    SHOWN = re.compile(
        r"^(step \d+/|done:|resumed from|guard:)|Error|error:|Traceback|skipping checkp"
    )

    def __init__(self, path: Path, every: int = 1, prefix: str = "") -> None:
        self.path, self.every, self.prefix = path, every, prefix
        self.handle = path.open("a", buffering=1)
        self.tail: deque[str] = deque(maxlen=40)

    def __call__(self, line: str) -> None:
        self.handle.write(line + "\n")
        self.tail.append(line)
        match = re.match(r"^step (\d+)/", line)
        if match and int(match.group(1)) % self.every and int(match.group(1)) != 1:
            return
        if self.SHOWN.search(line):
            print(f"    |{self.prefix} {line[:200]}", flush=True)


# --- part 1: throughput and MFU ----------------------------------------------------------------


def throughput_stats(records: list[dict[str, Any]], tokens_per_step: int, skip_until: int) -> dict:
    """tokens/s over the log steps after `skip_until` (each record's tokens_per_s covers the
    steps since the previous log step), and the mean of their MFU figures."""
    logged = [r for r in records if "tokens_per_s" in r]
    steady, seconds, steps, previous = [], 0.0, 0, 0
    for record in logged:
        step, span = record["step"], record["step"] - previous
        previous = record["step"]
        if step > skip_until and record["tokens_per_s"] > 0:
            steady.append(record)
            seconds += span * tokens_per_step / record["tokens_per_s"]
            steps += span
    first = logged[0] if logged else None
    out: dict[str, Any] = {
        "log_steps": [
            {k: r.get(k) for k in ("step", "tokens_per_s", "mfu", "train_loss")} for r in logged
        ],
        "measured_steps": steps,
        "first_step_s": tokens_per_step / first["tokens_per_s"] if first else None,
    }
    if steps:
        out["tokens_per_s"] = steps * tokens_per_step / seconds
        mfus = [r["mfu"] for r in steady if r.get("mfu") is not None and not math.isnan(r["mfu"])]
        out["mfu_logged_mean"] = sum(mfus) / len(mfus) if mfus else None
    return out


def part_throughput(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    from model.flops import flops_per_token, mfu
    from model.gpt import ModelConfig
    from model.launch import launch_training

    out = work / "run"
    job = make_job(spec["preset"], spec["overrides"], Path(spec["data_dir"]), out)
    (work / "job.json").write_text(json.dumps(job, indent=2))
    train, cfg = job["train"], ModelConfig(**job["model"])
    tokens_per_step = train["micro_batch"] * train["grad_accum"] * cfg.block_size
    print(
        f"  {spec['preset']}: {cfg.n_layer}x{cfg.n_embd}, block {cfg.block_size}, vocab "
        f"{cfg.vocab_size}; micro_batch {train['micro_batch']} x grad_accum "
        f"{train['grad_accum']} = {tokens_per_step} tokens/step, {train['steps']} steps, "
        f"{train['precision']}, ZeRO {train['zero_stage']}, compile={train['compile']}",
        flush=True,
    )
    log = LauncherLog(work / "launcher.log", every=train["log_every"])
    started = time.monotonic()
    result: dict[str, Any] = {"model": job["model"], "train": train}
    result["params"] = None
    try:
        summary = launch_training(job, out, log)
        result |= {"summary": summary, "params": summary["num_params"], "finished": True}
    except Exception as err:
        result |= {"finished": False, "error": str(err)[-3000:]}
    result["wall_s"] = time.monotonic() - started
    stats = throughput_stats(read_metrics(out / "metrics.jsonl"), tokens_per_step, spec["skip"])
    result |= stats
    result["flops_per_token"] = flops_per_token(cfg)
    peak = spec["peak"]
    if "tokens_per_s" in stats:
        result["mfu"] = mfu(cfg, stats["tokens_per_s"], peak["used"], 1)
        if peak.get("measured"):
            result["mfu_vs_measured_matmul"] = mfu(cfg, stats["tokens_per_s"], peak["measured"], 1)
    result["ok"] = "tokens_per_s" in stats and result["finished"]
    return result


def summarize_throughput(result: dict[str, Any], peak: dict[str, Any]) -> str:
    if "tokens_per_s" not in result:
        return "no steady log steps measured"
    text = (
        f"{result['tokens_per_s']:,.0f} tokens/s over {result['measured_steps']} steps, "
        f"MFU {result['mfu']:.1%} of {flops_text(peak['used'])} ({peak['source']})"
    )
    if result.get("mfu_vs_measured_matmul") is not None:
        text += f"; {result['mfu_vs_measured_matmul']:.1%} of the measured matmul peak"
    if result.get("first_step_s") is not None:
        compiled = (result.get("train") or {}).get("compile")
        text += f"; first step{' (compile)' if compiled else ''} {result['first_step_s']:.0f} s"
    if not result.get("finished"):
        text += "; the run did not finish (see error)"
    return text


# --- part 2: exact resume after SIGKILL --------------------------------------------------------


def killed_run(job: dict[str, Any], out: Path, kill_at: int, log: LauncherLog) -> dict:
    """Run the job under the launcher and SIGKILL its process group when rank 0 prints
    `step kill_at/`; returns what was seen."""
    from model.launch import free_port, launcher_command, launcher_env

    out.mkdir(parents=True, exist_ok=True)
    job_path = out / "job.json"
    job_path.write_text(json.dumps(job, indent=2))
    command = launcher_command(job_path, 1, free_port())
    seen: dict[str, Any] = {"killed": False}
    with subprocess.Popen(
        command,
        env=launcher_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    ) as run:
        assert run.stdout is not None
        try:
            for raw in run.stdout:
                line = raw.rstrip("\n")
                log(line)
                if line.startswith(f"step {kill_at}/"):
                    os.killpg(run.pid, signal.SIGKILL)  # no chance to clean up
                    seen |= {"killed": True, "kill_line": line}
                    break
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            seen["exit_code"] = run.wait()
    return seen


def compare(expected: dict[int, float], actual: dict[int, float], steps: range) -> dict:
    """Per-step losses of `steps` in both: how many are equal, the max |difference|."""
    common = [s for s in steps if s in expected and s in actual]
    diffs = [abs(actual[s] - expected[s]) for s in common]
    return {
        "steps": [common[0], common[-1]] if common else None,
        "compared": len(common),
        "equal": sum(actual[s] == expected[s] for s in common),
        "max_abs_diff": max(diffs) if diffs else None,
    }


def weight_diff(a: Path, b: Path) -> dict[str, Any]:
    """Whether two exported model.safetensors are byte-identical, and the max |difference|."""
    from safetensors.torch import load_file

    if not (a.is_file() and b.is_file()):
        return {"identical": None, "max_abs_diff": None}
    if a.read_bytes() == b.read_bytes():
        return {"identical": True, "max_abs_diff": 0.0}
    left, right = load_file(str(a)), load_file(str(b))
    worst = max(float((left[k].float() - right[k].float()).abs().max()) for k in left)
    return {"identical": False, "max_abs_diff": worst}


def part_resume(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    from model.launch import launch_training

    if spec["deterministic"]:
        site = work / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(DETERMINISTIC_SITE)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(site), os.environ.get("PYTHONPATH")])
        )
        os.environ["LMFORGE_BENCH_DETERMINISTIC"] = "1"
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    data = Path(spec["data_dir"])
    ref_out, out = work / "uninterrupted", work / "killed"
    ref_job = make_job(spec["preset"], spec["overrides"], data, ref_out)
    job = make_job(spec["preset"], spec["overrides"], data, out)
    train = job["train"]
    steps, kill_at = train["steps"], spec["kill_at"]
    print(
        f"  {spec['preset']}: {job['model']['n_layer']}x{job['model']['n_embd']}, block "
        f"{job['model']['block_size']}; {steps} steps, checkpoint_every "
        f"{train['checkpoint_every']}, {train['precision']}, ZeRO {train['zero_stage']}; "
        f"SIGKILL at step {kill_at}; deterministic flags: {spec['deterministic']}",
        flush=True,
    )
    result: dict[str, Any] = {"model": job["model"], "train": train, "kill_at": kill_at}
    result["deterministic_flags"] = spec["deterministic"]
    ref_log, log = LauncherLog(work / "uninterrupted.log", 10), LauncherLog(work / "killed.log")
    # On a GPU the uninterrupted run goes alongside (it shares the GPU, not its numbers); on
    # CPU one after the other, so the two do not fight over the cores.
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(launch_training, ref_job, ref_out, ref_log)
        if not spec["parallel"]:
            reference.result()
        seen = killed_run(job, out, kill_at, log)
        before = read_metrics(out / "metrics.jsonl")
        kept = sorted(p.name for p in (out / "checkpoints").glob("step*"))
        result |= {"kill": seen, "checkpoints_after_kill": kept}
        result["finished_before_kill"] = (out / "train_summary.json").is_file()
        print(f"  killed: {seen.get('kill_line')!r}; checkpoints left: {kept}", flush=True)
        lines: list[str] = []

        def on_line(line: str) -> None:
            lines.append(line)
            log(line)

        resumed = launch_training(job, out, on_line)
        ref_summary = reference.result()
    result["resumed_from"] = resumed["resumed_from"]
    done = int(resumed["resumed_from"].removeprefix("step")) if resumed["resumed_from"] else 0
    expected = losses(read_metrics(ref_out / "metrics.jsonl"))
    first_try = losses(before)
    killed_at = max(first_try, default=0)
    result["last_step_before_kill"] = killed_at
    result["after_resume"] = compare(
        expected, losses(read_metrics(out / "metrics.jsonl")), range(done + 1, steps + 1)
    )
    result["before_kill"] = compare(expected, first_try, range(1, killed_at + 1))
    result["val_loss"] = {"uninterrupted": ref_summary["val_loss"], "resumed": resumed["val_loss"]}
    result["weights"] = weight_diff(
        ref_out / "model" / "model.safetensors", out / "model" / "model.safetensors"
    )
    after = result["after_resume"]
    result["ok"] = bool(
        seen["killed"] and done and done < steps and after["compared"] == steps - done
    )
    result["bitwise_equal"] = after["compared"] > 0 and after["equal"] == after["compared"]
    return result


def summarize_resume(result: dict[str, Any]) -> str:
    if "after_resume" not in result:
        return "no comparison"
    after, before = result["after_resume"], result["before_kill"]
    text = (
        f"killed at step {result['last_step_before_kill']}, resumed from "
        f"{result['resumed_from']}: steps {after['steps'][0]}-{after['steps'][1]} "
        f"{after['equal']}/{after['compared']} losses equal, max |diff| "
        f"{after['max_abs_diff']:.3g}"
        if after["compared"]
        else f"resumed from {result['resumed_from']}: nothing left to compare"
    )
    if before["compared"]:
        text += (
            f"; run-to-run before the kill: {before['equal']}/{before['compared']} equal, max "
            f"|diff| {before['max_abs_diff']:.3g}"
        )
    weights = result["weights"]
    if weights["identical"] is not None:
        text += "; exported weights " + (
            "identical" if weights["identical"] else f"differ (max {weights['max_abs_diff']:.3g})"
        )
    return text


# --- part 3: fp16 with dynamic loss scaling, and ZeRO-Offload -----------------------------------

# Two consecutive overflows forced through model/faults.py: DeepSpeed's scaler (hysteresis 2,
# its default) halves the scale at the second; the guard counts them as scaler skips, not bad
# steps (the loss stays finite).
FP16_FAULTS = {"spike_steps": [10, 11], "spike_factor": 1e9}
INITIAL_SCALE = 2.0**16  # model/engine.py: "initial_scale_power": 16
MEMORY_SITE = """\\
# Written by bench/gpu.py for its fp16 part: each training rank's peak CUDA memory, written
# next to its job.json when the rank exits (model/train.py ends with os._exit: wrapped here).
import os
import sys

if os.environ.get("LOCAL_RANK") is not None and os.environ.get("LMFORGE_BENCH_MEMORY"):
    import atexit
    import json

    _exit = os._exit
    _done = []

    def _record():
        if _done or "--job" not in sys.argv[:-1]:
            return
        _done.append(1)
        job = sys.argv[sys.argv.index("--job") + 1]
        rank = os.environ.get("RANK", os.environ["LOCAL_RANK"])
        record = {"rank": int(rank), "cuda": False}
        torch = sys.modules.get("torch")
        try:
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                record |= {
                    "cuda": True,
                    "max_allocated": torch.cuda.max_memory_allocated(),
                    "max_reserved": torch.cuda.max_memory_reserved(),
                }
        except Exception as err:
            record["error"] = repr(err)
        path = os.path.join(os.path.dirname(os.path.abspath(job)), f"peak_memory-rank{rank}.json")
        with open(path, "w") as handle:
            json.dump(record, handle)

    def _record_then_exit(code):
        try:
            _record()
        finally:
            _exit(code)

    os._exit = _record_then_exit
    atexit.register(_record)
"""


def tensor_devices(value: Any, depth: int = 0) -> dict[str, int]:
    """device -> how many tensors, over a (nested) checkpoint value."""
    import torch

    found: dict[str, int] = {}
    if isinstance(value, torch.Tensor):
        return {str(value.device): 1}
    if depth > 6:
        return found
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple):
        for item in items:
            for device, count in tensor_devices(item, depth + 1).items():
                found[device] = found.get(device, 0) + count
    return found


def inspect_checkpoint(root: Path) -> dict[str, Any]:
    """What the newest DeepSpeed checkpoint under `root` says: the engine's skipped steps, the
    ZeRO optimizer's loss scaler, and the devices its fp32 partitions and Adam state were on
    (torch.load without map_location keeps them). Key names are looked up, not assumed."""
    import torch

    folders = sorted(p for p in root.glob("step*") if p.is_dir())
    if not folders:
        return {"error": f"no checkpoint under {root}"}
    folder = folders[-1]
    found: dict[str, Any] = {
        "folder": folder.name,
        "files": sorted(p.name for p in folder.iterdir()),
    }
    model_files = sorted(folder.glob("*mp_rank_00_model_states.pt"))
    if model_files:
        state = torch.load(model_files[0], weights_only=False)
        found["model_states_keys"] = sorted(map(str, state))
        for key in ("skipped_steps", "global_steps"):
            if isinstance(state.get(key), int | float):
                found[key] = int(state[key])
        found["module_devices"] = tensor_devices(state.get("module", {}))
        config = state.get("ds_config")
        if isinstance(config, dict):  # what the engine ran with, as it saved it
            found["ds_config"] = {
                k: config.get(k) for k in ("zero_optimization", "fp16", "bf16") if k in config
            }
    optim_files = sorted(folder.glob("*_optim_states.pt"))
    if not optim_files:
        found["error"] = f"no *_optim_states.pt in {folder}"
        return found
    state = torch.load(optim_files[0], weights_only=False)
    found["optim_file"] = optim_files[0].name
    found["optim_keys"] = sorted(map(str, state))
    inner = state.get("optimizer_state_dict", state)
    if not isinstance(inner, dict):
        found["error"] = f"optimizer_state_dict is a {type(inner).__name__}"
        return found
    found["optimizer_state_dict_keys"] = sorted(map(str, inner))
    scaler = inner.get("loss_scaler")
    if scaler is not None:
        fields = scaler if isinstance(scaler, dict) else getattr(scaler, "__dict__", {})
        found["loss_scaler"] = {"type": type(scaler).__name__} | {
            k: v for k, v in fields.items() if isinstance(v, bool | int | float)
        }
    fp32 = next((k for k in inner if "fp32" in str(k)), None)  # single_partition_of_fp32_groups
    if fp32 is not None:
        found["fp32_groups_key"] = fp32
        found["fp32_groups_devices"] = tensor_devices(inner[fp32])
    base = inner.get("base_optimizer_state")
    if base is not None:
        found["adam_state_devices"] = tensor_devices(base.get("state", base))
    return found


def scale_of(checkpoint: dict[str, Any]) -> float | None:
    scaler = checkpoint.get("loss_scaler") or {}
    value = scaler.get("cur_scale", scaler.get("loss_scale"))
    return float(value) if isinstance(value, int | float) else None


def part_fp16(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    from model.launch import launch_training

    site = work / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(MEMORY_SITE)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(site), os.environ.get("PYTHONPATH")])
    )
    os.environ["LMFORGE_BENCH_MEMORY"] = "1"
    os.environ.pop("LMFORGE_FAULTS", None)
    # ids 1..span-1 only: a loss that falls within a few steps (uniform tokens over the whole
    # vocabulary leave nothing to learn)
    data = build_shards(
        work / "tokens", spec["vocab"], spec["train_tokens"], spec["val_tokens"], spec["span"]
    )
    common = spec["overrides"]
    plan = {
        "fp16": [*common, "train.precision=fp16"],
        "offload": [*common, "train.precision=bf16", "train.offload_optimizer=true"],
        "no_offload": [*common, "train.precision=bf16"],
    }
    if spec["smoke"]:
        del plan["fp16"]
    jobs = {name: make_job(spec["preset"], o, data, work / name) for name, o in plan.items()}
    first = next(iter(jobs.values()))
    print(
        f"  {spec['preset']}: {first['model']['n_layer']}x{first['model']['n_embd']}, block "
        f"{first['model']['block_size']}, vocab {first['model']['vocab_size']} (tokens drawn from "
        f"1..{spec['span'] - 1}); {first['train']['steps']} steps, ZeRO "
        f"{first['train']['zero_stage']}; runs: {', '.join(jobs)}"
        + ("" if spec["smoke"] else f"; fp16 with forced overflows {FP16_FAULTS}"),
        flush=True,
    )
    result: dict[str, Any] = {"model": first["model"], "runs": {}}
    logs = {n: LauncherLog(work / f"{n}.log", 10, f" {n}:") for n in jobs}
    began = threading.Event()  # the fp16 run's launcher printed its first line

    def run(name: str) -> dict[str, Any]:
        def on_line(line: str) -> None:
            if name == "fp16":
                began.set()
            logs[name](line)

        try:
            return {"summary": launch_training(jobs[name], work / name, on_line)}
        except Exception as err:
            return {"error": f"{type(err).__name__}: {err}"[-3000:]}

    with ThreadPoolExecutor(len(jobs) if spec["parallel"] else 1) as pool:
        futures = {}
        if "fp16" in jobs:
            # The faults go to the fp16 run alone: launch_training copies the environment
            # before it starts the launcher, so they are set until the launcher's first line.
            os.environ["LMFORGE_FAULTS"] = json.dumps(FP16_FAULTS)
            try:
                futures["fp16"] = pool.submit(run, "fp16")
                while not began.wait(0.2) and not futures["fp16"].done():
                    pass
            finally:
                os.environ.pop("LMFORGE_FAULTS", None)
        for name in jobs:
            if name not in futures:
                futures[name] = pool.submit(run, name)
        outcomes = {name: future.result() for name, future in futures.items()}

    for name, outcome in outcomes.items():
        out = work / name
        entry: dict[str, Any] = {"train": jobs[name]["train"]}
        summary = outcome.get("summary")
        if summary is None:
            entry |= {"ok": False, "error": outcome["error"]}
        else:
            keep = ("first_loss", "final_loss", "val_loss", "health", "guard", "steps_run")
            entry |= {k: summary.get(k) for k in keep} | {"wall_s": summary.get("wall_s")}
            entry["loss_falls"] = bool(summary["final_loss"] < summary["first_loss"])
        log_path = work / f"{name}.log"
        text = log_path.read_text() if log_path.is_file() else ""
        entry["guard_skipped_steps"] = sorted(
            {int(s) for s in re.findall(r"guard: step (\d+):", text)}
        )
        entry["checkpoint"] = inspect_checkpoint(out / "checkpoints")
        memory = sorted(out.glob("peak_memory-rank*.json"))
        entry["peak_memory"] = json.loads(memory[0].read_text()) if memory else None
        shown = {k: v for k, v in entry.items() if k not in ("train", "checkpoint")}
        shown["checkpoint"] = {
            k: v
            for k, v in entry["checkpoint"].items()
            if not k.endswith("_keys") and k not in ("files", "ds_config")
        }
        print(f"  {name}: {json.dumps(clean(shown))}", flush=True)
        result["runs"][name] = entry

    if spec["smoke"]:
        result["fp16"] = {
            "skipped": True,
            "why": "fp16 needs a GPU (DeepSpeed's CPU accelerator: \"Type fp16 is not supported "
            'on your device."; model/engine.py refuses it on CPU)',
        }
    else:
        run16 = result["runs"]["fp16"]
        checkpoint = run16.get("checkpoint", {})
        scale, skipped = scale_of(checkpoint), checkpoint.get("skipped_steps")
        forced = set(FP16_FAULTS["spike_steps"])
        verdict = {
            "forced_overflow_steps": sorted(forced),
            "loss_scale": scale,
            "initial_scale": INITIAL_SCALE,
            "skipped_steps": skipped,
            "other_skipped_steps": [s for s in run16["guard_skipped_steps"] if s not in forced],
        }
        verdict["scaler_acted"] = bool(
            (scale is not None and scale < INITIAL_SCALE) or (skipped or 0) > 0
        )
        verdict["ok"] = bool(
            "error" not in run16
            and run16.get("loss_falls")
            and run16.get("health") in ("healthy", "recovered")
            and verdict["scaler_acted"]
        )
        result["fp16"] = verdict
    offload = result["runs"]["offload"]
    devices = offload.get("checkpoint", {}).get("fp32_groups_devices") or {}
    check: dict[str, Any] = {"fp32_groups_devices": devices}
    zero = (offload.get("checkpoint", {}).get("ds_config") or {}).get("zero_optimization") or {}
    check["ds_offload_optimizer"] = zero.get("offload_optimizer")  # as the engine saved it
    check["state_on_cpu"] = bool(devices) and set(devices) == {"cpu"}
    base = result["runs"]["no_offload"]
    peaks = [r.get("peak_memory") or {} for r in (offload, base)]
    if all(p.get("cuda") for p in peaks):
        check["peak_allocated"] = {"offload": peaks[0]["max_allocated"]}
        check["peak_allocated"]["no_offload"] = peaks[1]["max_allocated"]
        check["less_gpu_memory"] = peaks[0]["max_allocated"] < peaks[1]["max_allocated"]
    check["no_offload_fp32_groups_devices"] = base.get("checkpoint", {}).get("fp32_groups_devices")
    check["ok"] = bool(
        "error" not in offload and offload.get("loss_falls") and check["state_on_cpu"]
    )
    result["offload"] = check
    result["ok"] = bool((result["fp16"].get("skipped") or result["fp16"]["ok"]) and check["ok"])
    return result


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def summarize_fp16(result: dict[str, Any]) -> str:
    runs = result.get("runs") or {}
    parts = []
    fp16 = result.get("fp16") or {}
    if fp16.get("skipped"):
        parts.append("fp16 skipped: fp16 needs a GPU")
    elif "fp16" in runs:
        run = runs["fp16"]
        if "error" in run:
            parts.append(f"fp16 run failed: {run['error'][-200:]}")
        else:
            guard = run.get("guard") or {}
            scale = fp16.get("loss_scale")
            parts.append(
                f"fp16: loss {run['first_loss']:.3f} -> {run['final_loss']:.3f}, health "
                f"{run['health']}, guard scaler_skips {guard.get('guard.scaler_skips', 0):.0f}, "
                f"bad_steps {guard.get('guard.bad_steps', 0):.0f} "
                f"(forced overflows at {fp16['forced_overflow_steps']}, others at "
                f"{fp16['other_skipped_steps']}), rollbacks {guard.get('guard.rollbacks', 0):.0f}"
                f"; DeepSpeed skipped_steps {fp16.get('skipped_steps')}, loss scale "
                + (f"{scale:g}" if scale is not None else "not found")
                + f" (initial {INITIAL_SCALE:g})"
            )
    run = runs.get("offload") or {}
    check = result.get("offload") or {}
    if "error" in run:
        parts.append(f"offload run failed: {run['error'][-200:]}")
    elif run:
        text = (
            f"offload (bf16, saved offload_optimizer {check.get('ds_offload_optimizer')}): loss "
            f"{run['first_loss']:.3f} -> {run['final_loss']:.3f}, fp32 "
            f"partitions on {check.get('fp32_groups_devices')} (without offload: "
            f"{check.get('no_offload_fp32_groups_devices')})"
        )
        peak = check.get("peak_allocated")
        if peak:
            text += (
                f", peak GPU allocated {gib(peak['offload'])} vs {gib(peak['no_offload'])} "
                "without offload"
            )
        else:
            text += ", peak GPU memory not measured (no CUDA)"
        parts.append(text)
    return "; ".join(parts) or "no result"


# --- part 4: the tiny pipeline -----------------------------------------------------------------


def pipeline_missing() -> list[str]:
    """What `lmforge run` needs that is not here (checked before spending its time cap)."""
    missing = [
        name
        for name in ("pyspark", "prefect", "mlflow", "trafilatura", "datasketch")
        if importlib.util.find_spec(name) is None
    ]
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        missing.append("java (Spark needs a Java 17 runtime)")
    return missing


def part_pipeline(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    missing = pipeline_missing()
    if missing:
        return {"ok": False, "skipped": True, "error": "missing: " + ", ".join(missing)}
    work_dir = work / "work"
    summary_path = work / "summary.json"
    script = Path(sys.executable).parent / "lmforge"
    entry = [str(script)] if script.is_file() else [sys.executable, "-m", "flows.cli"]
    command = [*entry, "run", "--config", "configs/tiny.toml", "--set", f"run.work_dir={work_dir}"]
    command += ["--summary-json", str(summary_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"  $ {' '.join(command)}", flush=True)
    started = time.monotonic()
    log_path = work / "lmforge.log"
    tail: deque[str] = deque(maxlen=40)
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as run,
    ):
        assert run.stdout is not None
        for raw in run.stdout:
            log.write(raw)
            line = raw.rstrip("\n")
            tail.append(line)
            if re.search(r"Finished in state|registered model|lmforge pipeline finished", line):
                print(f"    | {line[:200]}", flush=True)
        code = run.wait()
    result: dict[str, Any] = {"exit_code": code, "wall_s": time.monotonic() - started}
    # the launcher's ranks take the accelerator from DS_ACCELERATOR (model/launch.py), which
    # this script sets: cuda on the GPU, cpu in the smoke
    result["ds_accelerator"] = env.get("DS_ACCELERATOR", "")
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        keep = ("model_name", "model_version", "val_loss", "val_perplexity", "train_final_loss")
        result |= {k: summary.get(k) for k in keep}
        result["tokens_train"] = summary.get("tokens_train")
    if code != 0:
        result["error"] = "\n".join(tail)[-3000:]
    result["ok"] = code == 0 and "model_version" in result
    return result


def summarize_pipeline(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"skipped: {result['error']}"
    text = f"lmforge run exit {result.get('exit_code')}"
    if result.get("model_version") is not None:
        text += (
            f", registered {result['model_name']} version {result['model_version']}, val_loss "
            f"{result['val_loss']:.3f}"
        )
    if result.get("ds_accelerator"):
        text += f", wall {result['wall_s']:.0f} s, training with DS_ACCELERATOR="
        text += result["ds_accelerator"]
    return text


def part_recipe(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """bench/train_quality.py --recipe both for a fixed number of steps, in a child process."""
    out = work / "train_quality.json"
    command = [sys.executable, "-u", str(ROOT / "bench" / "train_quality.py"), "--recipe", "both"]
    command += [*spec["args"], "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, text=True, capture_output=True)
    print(done.stdout[-4000:], flush=True)
    if done.returncode != 0:
        return {"ok": False, "error": f"exit {done.returncode}: {done.stderr[-3000:]}"}
    report = json.loads(out.read_text())
    keep = ("recipe", "steps", "tokens_seen", "tokens_per_s", "val_bits_per_byte")
    runs = [{k: r[k] for k in keep} for r in report["runs"]]
    return {"ok": True, "budget": report["budget"], "precision": report["precision"]} | {
        "runs": runs,
        "means": report["means"],
    }


def summarize_recipe(result: dict[str, Any]) -> str:
    means = result["means"]
    return (
        ", ".join(
            f"{name} {m['val_bits_per_byte']:.3f} bpb at {m['tokens_per_s']:.0f} tok/s"
            for name, m in means.items()
        )
        + f" ({result['budget']}, {result['precision']})"
    )


PART_FUNCTIONS = {
    "throughput": part_throughput,
    "resume": part_resume,
    "fp16": part_fp16,
    "recipe": part_recipe,
    "pipeline": part_pipeline,
}
SUMMARIES = {
    "throughput": lambda r, spec: summarize_throughput(r, spec["peak"]),
    "resume": lambda r, spec: summarize_resume(r),
    "fp16": lambda r, spec: summarize_fp16(r),
    "recipe": lambda r, spec: summarize_recipe(r),
    "pipeline": lambda r, spec: summarize_pipeline(r),
}


# --- the orchestrator ---------------------------------------------------------------------------


def salvage_throughput(part_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The throughput figures of a run the cap cut (or that crashed), from its metrics.jsonl:
    the measurement may be complete although the final evaluation or export was not."""
    from model.flops import mfu
    from model.gpt import ModelConfig

    result: dict[str, Any] = {"ok": False, "finished": False}
    job_path = part_dir / "job.json"
    if not job_path.is_file():
        return result
    job = json.loads(job_path.read_text())
    cfg, train = ModelConfig(**job["model"]), job["train"]
    result |= {"model": job["model"], "train": train}
    per_step = train["micro_batch"] * train["grad_accum"] * cfg.block_size
    result |= throughput_stats(
        read_metrics(part_dir / "run" / "metrics.jsonl"), per_step, spec["skip"]
    )
    if "tokens_per_s" in result:
        result["mfu"] = mfu(cfg, result["tokens_per_s"], spec["peak"]["used"], 1)
        if spec["peak"].get("measured"):
            result["mfu_vs_measured_matmul"] = mfu(
                cfg, result["tokens_per_s"], spec["peak"]["measured"], 1
            )
    return result


def run_part(name: str, spec: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    """Run one part in a child process of this script with a time cap; its result, or why not."""
    part_dir = work / name
    part_dir.mkdir(parents=True, exist_ok=True)
    (part_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    command = [sys.executable, "-u", str(Path(__file__).resolve()), "--part", name]
    command += ["--work", str(part_dir)]
    started = time.monotonic()
    print(f"\n== {name} (cap {timeout:.0f} s)", flush=True)
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as child:

        def pump() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                tail.append(line.rstrip("\n"))
                print(line, end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = child.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_tree(child.pid)
            code, timed_out = child.wait(), True
        reader.join(timeout=10)
    seconds = time.monotonic() - started
    result_path = part_dir / "result.json"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    elif name == "throughput":  # what the metrics already hold, when the cap cut the run
        result = salvage_throughput(part_dir, spec)
    else:
        result = {"ok": False}
    if timed_out:
        result |= {"ok": False, "error": f"timed out after {timeout:.0f} s (killed)"}
    elif code != 0 and "error" not in result:
        result |= {"ok": False, "error": f"exit {code}:\n" + "\n".join(tail)[-3000:]}
    result |= {"seconds": seconds, "exit_code": code, "timed_out": timed_out}
    try:
        result["summary_line"] = SUMMARIES[name](result, spec)
    except Exception as err:  # a partial result: say so rather than fail the table
        result["summary_line"] = f"(incomplete result: {err})"
    if not result.get("ok") and result.get("error") and not result.get("skipped"):
        print(f"  {name} failed: {result['error'][-1500:]}", flush=True)
    return result


def measure_peak(device: str) -> float:
    import torch

    from model.peak_flops import matmul_flops

    size = 8192 if device == "cuda" else 512  # CPU bf16 matmuls are slow: seconds at 1024
    flops = matmul_flops(size, torch.bfloat16, device)
    if device == "cuda":
        torch.cuda.empty_cache()
    return flops


def specs(args: argparse.Namespace, data_dir: Path, peak: dict[str, Any]) -> dict[str, dict]:
    """What each part runs, on the GPU or as the CPU smoke."""
    common = ["train.num_ranks=1", "train.checkpoint_artifacts=none", "train.eval_batches=2"]
    if args.cpu_smoke:
        tiny = ["model.n_layer=2", "model.n_head=2", "model.n_embd=64", "model.block_size=64"]
        throughput = [*common, *tiny, "train.micro_batch=8", "train.grad_accum=2"]
        throughput += ["train.steps=8", "train.log_every=2", "train.compile=false"]
        resume = [*common, "model.n_embd=32", "model.block_size=32", "train.micro_batch=8"]
        resume += ["train.steps=20", "train.checkpoint_every=5"]
        skip, kill_at, resume_preset = 4, 12, "tiny.toml"
        fp16 = [*common, "model.n_embd=32", "model.block_size=32", "train.micro_batch=8"]
        fp16 += ["train.grad_accum=1", "train.steps=12"]
        fp16_preset, fp16_data = "tiny.toml", {"vocab": 512, "span": 32}
        fp16_data |= {"train_tokens": 60_000, "val_tokens": 10_000}
    else:
        throughput = [*common, f"train.micro_batch={args.micro_batch}"]
        throughput += [f"train.grad_accum={args.grad_accum}", f"train.steps={args.steps}"]
        throughput += ["train.log_every=10", "train.compile=true"]
        resume = [*common, "train.micro_batch=16", "train.grad_accum=2", "train.steps=40"]
        resume += ["train.checkpoint_every=10"]
        skip, kill_at, resume_preset = args.skip, 13, "small.toml"
        fp16 = [*common, "train.micro_batch=16", "train.grad_accum=2", "train.steps=30"]
        fp16_preset, fp16_data = "small.toml", {"vocab": 50304, "span": 64}
        fp16_data |= {"train_tokens": 400_000, "val_tokens": 50_000}
    throughput += ["train.precision=bf16", "train.zero_stage=2", "train.eval_every=1000000"]
    throughput += ["train.checkpoint_every=0", "train.keep_checkpoints=1"]
    throughput += ["train.warmup_steps=10", f"train.peak_flops={peak['used']:.6e}"]
    resume += ["train.precision=bf16", "train.zero_stage=2", "train.compile=false"]
    resume += ["train.log_every=1", "train.eval_every=1000000", "train.keep_checkpoints=2"]
    resume += ["train.warmup_steps=5", "train.ema_decay=0.0"]
    # precision and offload per run (part_fp16); the checkpoint at the end is the one read
    fp16 += ["train.zero_stage=2", "train.compile=false", "train.log_every=5"]
    fp16 += ["train.eval_every=1000000", "train.checkpoint_every=0", "train.keep_checkpoints=1"]
    fp16 += ["train.warmup_steps=5", "train.ema_decay=0.0"]
    base = {"data_dir": str(data_dir), "peak": peak, "smoke": args.cpu_smoke}
    if args.cpu_smoke:  # tiny, fp32 (a CPU without fast bf16 would take minutes)
        recipe = ["--layers", "2", "--heads", "2", "--embd", "64", "--block", "64"]
        recipe += ["--vocab", "300", "--steps", "6", "--warmup", "2", "--rounds", "1"]
        recipe += ["--precision", "fp32"]
    else:  # gpt2-124m's shape; 200 steps of 16 x 1024 tokens per recipe
        recipe = ["--layers", "12", "--heads", "12", "--embd", "768", "--block", "1024"]
        recipe += ["--vocab", "8192", "--batch", "16", "--steps", "200", "--rounds", "1"]
        recipe += ["--precision", "bf16", "--lr", "1e-3", "--ema", "0"]
    return {
        "throughput": base | {"preset": "gpt2-124m.toml", "overrides": throughput, "skip": skip},
        "resume": base
        | {
            "preset": resume_preset,
            "overrides": resume,
            "kill_at": kill_at,
            "deterministic": not args.no_deterministic,
            "parallel": not args.cpu_smoke,
            "skip": skip,
        },
        "fp16": base
        | fp16_data
        | {"preset": fp16_preset, "overrides": fp16, "parallel": not args.cpu_smoke},
        "recipe": base | {"args": recipe},
        "pipeline": base | {"skip": skip},
    }


def print_table(results: dict[str, dict[str, Any]], mode: str, device: str, total: float) -> None:
    print(f"\nbench/gpu.py ({mode}) on {device}: {total:.0f} s in all")
    print(f"{'part':<11} {'status':<9} {'seconds':>7}  result")
    for name, result in results.items():
        if result.get("skipped"):
            status = "skipped"
        elif result.get("timed_out"):
            # the throughput's measured steps may be in although the run's end was cut
            status = "cut" if result.get("tokens_per_s") else "timeout"
        else:
            status = "ok" if result.get("ok") else "FAILED"
        line = result.get("summary_line", "")
        print(f"{name:<11} {status:<9} {result.get('seconds', 0):>7.0f}  {line}")
    throughput = results.get("throughput", {})
    if mode == "cpu-smoke":
        print(f"anchors: {ANCHORS} (CPU smoke: the figures above check the script, not a GPU)")
    elif throughput.get("mfu") is not None:
        verdict = "meets" if throughput["mfu"] >= TARGET_MFU else "below"
        print(f"anchors: {ANCHORS}; this run {throughput['mfu']:.1%} ({verdict} the target)")
    else:
        print(f"anchors: {ANCHORS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cpu-smoke", "--dry-run", action="store_true", help="each part tiny on CPU"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--micro-batch", type=int, default=32, help="throughput part")
    parser.add_argument("--grad-accum", type=int, default=4, help="throughput part")
    parser.add_argument("--steps", type=int, default=60, help="throughput part's steps")
    parser.add_argument(
        "--skip", type=int, default=20, help="throughput: log steps up to this are warm-up"
    )
    parser.add_argument("--no-deterministic", action="store_true", help="resume part")
    parser.add_argument(
        "--total-s", type=float, default=None, help=f"the whole check's cap (GPU: {TOTAL_S})"
    )
    parser.add_argument("--json", type=Path, default=None, help="results file")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # a child's part
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:  # a child: one part, its result to <work>/result.json
        spec = json.loads((args.work / "spec.json").read_text())
        result = PART_FUNCTIONS[args.part](spec, args.work)
        (args.work / "result.json").write_text(json.dumps(clean(result), indent=2))
        return 0

    started = time.monotonic()
    if args.cpu_smoke:
        # every child (the parts, the launcher, the ranks, the pipeline) sees no GPU
        os.environ["DS_ACCELERATOR"] = "cpu"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(
            f"bench/gpu.py: no CUDA GPU here (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}): nothing measured. This check needs a CUDA GPU, a CUDA "
            "build of torch and deepspeed (see this file's docstring for how to run it); "
            "`bench/gpu.py --cpu-smoke` checks the script itself on CPU."
        )
        return 0
    if importlib.util.find_spec("deepspeed") is None:
        print("bench/gpu.py: deepspeed is not installed (pip install deepspeed): nothing run")
        return 1
    if not args.cpu_smoke:
        os.environ["DS_ACCELERATOR"] = "cuda"
    mode = "cpu-smoke" if args.cpu_smoke else "gpu"
    device = "cpu" if args.cpu_smoke else torch.cuda.get_device_name()
    caps = CAPS_SMOKE if args.cpu_smoke else CAPS_GPU
    total_s = args.total_s or (sum(caps.values()) + 60 if args.cpu_smoke else TOTAL_S)
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    info = versions()
    print(f"bench/gpu.py ({mode}) on {device}: {json.dumps(info)}", flush=True)
    print(f"anchors: {ANCHORS}", flush=True)

    datasheet = 0.0 if args.cpu_smoke else dense_bf16_peak(device)
    measured = measure_peak("cpu" if args.cpu_smoke else "cuda")
    peak = {"datasheet": datasheet or None, "measured": measured}
    if datasheet:
        peak |= {"used": datasheet, "source": f"{device} datasheet dense bf16"}
    else:
        peak |= {"used": measured, "source": f"bf16 matmul measured on {device}"}
    print(
        f"bf16 peak for MFU: {flops_text(peak['used'])} ({peak['source']}); measured matmul "
        f"{flops_text(measured)}",
        flush=True,
    )

    work = Path(tempfile.mkdtemp(prefix="lmforge-gpu-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        vocab = 512 if args.cpu_smoke else 50304  # the preset's tokenize.vocab_size
        train_tokens, val_tokens = (200_000, 20_000) if args.cpu_smoke else (16_000_000, 500_000)
        data_dir = build_shards(work / "tokens", vocab, train_tokens, val_tokens)
        print(f"random-token shards: {train_tokens:,} train tokens, vocab {vocab}: {data_dir}")
        plan = specs(args, data_dir, peak)
        for name in chosen:
            left = total_s - (time.monotonic() - started)
            if left < 20:
                results[name] = {"ok": False, "skipped": True, "error": "no time left"}
                results[name] |= {"summary_line": "not run: the whole check's time was spent"}
                continue
            results[name] = run_part(name, plan[name], work, min(caps[name], left))
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    print_table(results, mode, device, total)
    report = {
        "mode": mode,
        "device": device,
        "versions": info,
        "peak_bf16_flops": peak,
        "anchors": ANCHORS,
        "target_mfu": TARGET_MFU,
        "caps_s": caps,
        "total_s": total,
        "parts": results,
    }
    path = args.json or RESULTS / ("gpu_cpu_smoke.json" if args.cpu_smoke else "gpu.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(report), indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
