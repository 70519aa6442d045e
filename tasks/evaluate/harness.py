"""lm-evaluation-harness on an exported model: the tasks lmforge ships, over local data, offline.

The task definitions are lm-eval YAML templates in `harness_tasks/` (package data). A run writes
the data it is given (checked the way model/eval_tasks.py reads it) and a concrete copy of each
template pointing at that data into a temporary include folder, exports the model to a Hugging
Face folder (model/hf.py) and runs `lm_eval.simple_evaluate` with its `hf` model on the CPU in
float32. Nothing is downloaded: the hub and datasets run offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.eval_tasks import read_choices, read_texts
from model.evaluate import end_of_text_id
from model.hf import export_hf

TASKS_DIR = Path(__file__).with_name("harness_tasks")
DATA_PLACEHOLDER = "@data_file@"
# Each shipped task and the evaluation data it reads: the --choices JSONL or the --text files.
TASK_DATA = {"lmforge_choices": "choices", "lmforge_perplexity": "texts"}
HARNESS_BATCH = 16  # requests per forward pass; only speed depends on it


@dataclass
class HarnessData:
    """The local data the shipped tasks read."""

    choices: Path | None = None  # JSONL {context, choices, label}: lmforge_choices
    texts: list[Path] = field(default_factory=list)  # text files or folders: lmforge_perplexity


def shipped_tasks() -> list[str]:
    """Names of the task definitions lmforge ships (the templates in harness_tasks/)."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def parse_task_names(spec: str | list[str]) -> list[str]:
    """Task names from `a,b` or a list, in order, without repeats; unknown names are an error."""
    parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
    names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    unknown = [n for n in names if n not in shipped_tasks()]
    if unknown or not names:
        raise ValueError(
            f"unknown lm-evaluation-harness task(s) {unknown or [spec]}: lmforge ships "
            f"{', '.join(shipped_tasks())} (--harness takes a comma-separated list of them)"
        )
    return names


def check_harness_run(names: list[str], data: HarnessData) -> None:
    """Refuse, naming what to install or pass, a run lm-eval is missing for or a task whose
    data was not given."""
    missing = [m for m in ("lm_eval", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(
            f"--harness needs lm-evaluation-harness and transformers ({', '.join(missing)} not "
            "installed): make setup-hf, or pip install -c constraints.txt -e '.[hf]'"
        )
    for name in names:
        if TASK_DATA[name] == "choices" and data.choices is None:
            raise ValueError(
                f"harness task {name} needs a JSONL of {{context, choices, label}}: "
                "pass --choices FILE or set evaluate.choices"
            )
        if TASK_DATA[name] == "texts" and not data.texts:
            raise ValueError(
                f"harness task {name} needs text to score: pass --text FILE_OR_FOLDER "
                "or set evaluate.texts"
            )


def write_task_folder(names: list[str], data: HarnessData, folder: Path) -> Path:
    """The concrete task YAMLs for `names` and the data they read, in `folder` (the include
    path for lm-eval's TaskManager)."""
    check_harness_run(names, data)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        rows: list[dict[str, Any]]
        if TASK_DATA[name] == "choices":
            assert data.choices is not None  # check_harness_run
            rows = [
                {k: item[k] for k in ("context", "choices", "label")}
                for item in read_choices(data.choices)
            ]
        else:
            rows = [{"text": text} for path in data.texts for text in read_texts(path)]
        data_file = folder / f"{name}.jsonl"
        data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        config = yaml.safe_load((TASKS_DIR / f"{name}.yaml").read_text())
        config["dataset_kwargs"]["data_files"]["test"] = str(data_file)
        config["dataset_kwargs"]["cache_dir"] = str(folder / "datasets-cache")
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def hf_model_args(hf_dir: Path, prefix: int) -> dict[str, Any]:
    """lm-eval `hf` model arguments: the folder in float32, no BOS token added, and `prefix`
    (the end-of-text id) as what a text's first token and an empty context are conditioned on,
    as model/scoring.py does."""
    return {
        "pretrained": str(hf_dir),
        "dtype": "float32",
        "add_bos_token": False,
        "prefix_token_id": prefix,
    }


def simple_evaluate_offline(
    hf_dir: Path, prefix: int, names: list[str], task_folder: Path
) -> dict[str, Any]:
    """lm-eval's own result dict (results, n-samples, samples per task) of the HF folder on the
    tasks in `task_folder` (only those: the built-in task index is not loaded), on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_folder), include_defaults=False)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=hf_model_args(hf_dir, prefix),
        tasks=names,
        batch_size=HARNESS_BATCH,
        device="cpu",
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=1000,
    )
    if results is None:
        raise RuntimeError("lm_eval.simple_evaluate returned no results (not rank 0?)")
    return results


def task_metrics(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per task, each metric and its stderr (`<metric>_stderr`, where lm-eval gives one) and
    the items scored; lm-eval's `<metric>,<filter>` keys lose the default filter `none`."""
    tasks: dict[str, dict[str, float]] = {}
    for task, values in results["results"].items():
        row: dict[str, float] = {}
        for key, value in values.items():
            metric, _, filter_name = key.partition(",")
            if not filter_name or not isinstance(value, int | float):
                continue  # the alias, or an "N/A" stderr (perplexities have none)
            row[metric if filter_name == "none" else f"{metric}_{filter_name}"] = float(value)
        row["items"] = results["n-samples"][task]["effective"]
        tasks[task] = row
    return tasks


def harness_scores(model_dir: Path, names: list[str], data: HarnessData) -> dict[str, Any]:
    """{lm_eval version, tasks: {task: {metric: value, <metric>_stderr: ..., items}}} of the
    exported model in `model_dir`, scored by lm-eval on its Hugging Face export."""
    import lm_eval

    with tempfile.TemporaryDirectory(prefix="lmforge-harness-") as temp:
        task_folder = write_task_folder(names, data, Path(temp) / "tasks")
        hf_dir = export_hf(Path(model_dir), Path(temp) / "hf")
        results = simple_evaluate_offline(hf_dir, end_of_text_id(model_dir), names, task_folder)
    return {"lm_eval": lm_eval.__version__, "tasks": task_metrics(results)}


def flat_metrics(harness: dict[str, Any]) -> dict[str, float]:
    """`harness.<task>.<metric>` -> value: the names the evaluated model's MLflow run gets."""
    return {
        f"harness.{task}.{metric}": value
        for task, row in harness["tasks"].items()
        for metric, value in row.items()
    }


def harness_table(harness: dict[str, Any]) -> list[str]:
    """The harness results as Markdown lines: one row per task and metric, with its stderr."""
    lines = [
        f"\n## lm-evaluation-harness {harness['lm_eval']}\n",
        "| task | items | metric | value | stderr |",
        "|---|---|---|---|---|",
    ]
    for task, row in harness["tasks"].items():
        for metric, value in row.items():
            if metric == "items" or metric.endswith("_stderr"):
                continue
            stderr = row.get(f"{metric}_stderr")
            shown = "" if stderr is None else f"{stderr:.4f}"
            lines.append(f"| {task} | {row['items']} | {metric} | {value:.4f} | {shown} |")
    return lines
