"""The evaluation sets the pipeline scores models on, as the curate step checks them.

The sets come from the other steps' settings: `evaluate.choices`, `evaluate.sft`, each of
`evaluate.texts` (the shipped lm-eval tasks read these same files: `lmforge_choices` the
choices, `lmforge_perplexity` the texts, tasks/evaluate/harness.py:TASK_DATA),
`finetune.choices`, and the extra files of `curate.decontaminate.against`. Each set is named
by its setting, hashed (sha256 of the file, or of a folder's files) for the step fingerprint
and the gate, and read into items: one string per evaluation example, the text a model is
scored on. This module reads files with the standard library only (no torch: Spark executors
unpickle what imports it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from model.config import Checked

if TYPE_CHECKING:
    from tasks.config import LmforgeConfig

SetKind = Literal["choices", "sft", "text", "records"]
# The lm-eval tasks lmforge ships and the evaluate setting whose data each reads
# (tasks/evaluate/harness.py:TASK_DATA; a test keeps the two equal).
HARNESS_DATA = {"lmforge_choices": "choices", "lmforge_perplexity": "texts"}
MAX_NGRAM = 256  # the n-gram hash has this many position weights


@dataclass
class DecontaminateConfig(Checked):
    """`curate.decontaminate`: word n-gram overlap with the evaluation sets (GPT-3, datatrove)."""

    section: ClassVar[str] = "curate.decontaminate"

    enabled: bool = True
    """Check the documents against every evaluation set (evaluate.choices, .sft, .texts,
    finetune.choices and `against`). Off: nothing is checked, and the promotion gate refuses a
    model scored on sets its data was not checked against."""
    ngram: int = 13
    """Words per n-gram (>= 1; 13 as GPT-3, datatrove uses 12)."""
    min_item_words: int = 8
    """An evaluation item of fewer than `ngram` words is one n-gram of all its words, if it has
    at least this many (1 <= min_item_words <= ngram); shorter items are skipped (counted)."""
    action: Literal["drop", "redact"] = "drop"
    """"drop": a document with a match is dropped (`contaminated`); "redact": the matched word
    spans are cut out of its text."""
    min_words_after_redact: int = 50
    """redact: a document left with fewer words is dropped (`redacted_too_short`) (>= 0)."""
    against: list[str] = field(default_factory=list)
    """More evaluation sets: JSONL files (every text field of a line is one item) or text
    files and folders (each file one item)."""

    def check(self) -> None:
        self.at_least(1, "ngram", "min_item_words")
        self.at_least(0, "min_words_after_redact")
        self.require(self.ngram <= MAX_NGRAM, "ngram", f"ngram must be <= {MAX_NGRAM}")
        self.require(
            self.min_item_words <= self.ngram,
            "min_item_words",
            f"min_item_words must be <= ngram = {self.ngram} (longer items give n-grams anyway)",
            "ngram",
        )


@dataclass(frozen=True)
class EvalSetFile:
    """One evaluation set: its setting (`name`), where it is, how to read it, who scores it."""

    name: str
    path: str
    kind: SetKind
    used_by: tuple[str, ...]

    def sha256(self) -> str:
        """sha256 of the file, or of a folder's files (each relative path and content hash)."""
        return content_sha256(Path(self.path), self.name)


def _files(path: Path, name: str) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
        if found:
            return found
    raise FileNotFoundError(
        f"{name} = {str(path)!r}: no such file (or an empty folder); the curate step checks "
        "its training documents against every evaluation set, so fix or unset the setting"
    )


def content_sha256(path: Path, name: str) -> str:
    """sha256 of a file's bytes; of a folder, over each file's relative path and sha256."""
    files = _files(path, name)
    if files == [path]:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file in files:
        digest.update(
            f"{file.relative_to(path)}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode()
        )
    return digest.hexdigest()


def evaluation_sets(config: LmforgeConfig) -> list[EvalSetFile]:
    """Every evaluation set the settings name, in a fixed order (evaluate, finetune, extra)."""
    settings, sets = config.evaluate, []
    if settings.choices:
        harness = tuple(f"harness:{t}" for t, d in HARNESS_DATA.items() if d == "choices")
        sets.append(
            EvalSetFile("evaluate.choices", settings.choices, "choices", ("evaluate", *harness))
        )
    if settings.sft:
        sets.append(EvalSetFile("evaluate.sft", settings.sft, "sft", ("evaluate",)))
    harness = tuple(f"harness:{t}" for t, d in HARNESS_DATA.items() if d == "texts")
    for i, text in enumerate(settings.texts):
        sets.append(EvalSetFile(f"evaluate.texts[{i}]", text, "text", ("evaluate", *harness)))
    if config.finetune.choices:
        sets.append(
            EvalSetFile("finetune.choices", config.finetune.choices, "choices", ("finetune",))
        )
    for i, extra in enumerate(config.curate.decontaminate.against):
        kind: SetKind = "records" if extra.endswith(".jsonl") else "text"
        sets.append(EvalSetFile(f"curate.decontaminate.against[{i}]", extra, kind, ("curate",)))
    return sets


def curate_identity(config: LmforgeConfig) -> tuple[dict[str, Any], list[EvalSetFile]]:
    """The curate step's fingerprinted settings, and the evaluation sets it checks: with
    decontamination on, each set's name and sha256 join the `curate` section, so new contents
    of an evaluation file make a new curate output."""
    identity: dict[str, Any] = {"curate": config.to_dict()["curate"]}
    sets = evaluation_sets(config) if config.curate.decontaminate.enabled else []
    if sets:
        identity["evaluation_sets"] = {s.name: s.sha256() for s in sets}
    return identity, sets


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value, depth first, in order (numbers and labels left out)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _record_items(kind: SetKind, record: Any, where: str) -> list[str]:
    if kind == "choices":
        if not (isinstance(record, dict) and isinstance(record.get("context"), str)):
            raise ValueError(f'{where}: expected {{"context": str, "choices": [str, ...], ...}}')
        # the context with each choice, as the model scores it: n-grams across the join count
        return [f"{record['context']} {choice}" for choice in _strings(record.get("choices"))]
    if kind == "sft":
        if isinstance(record, dict) and isinstance(record.get("messages"), list):
            contents = [m.get("content", "") for m in record["messages"] if isinstance(m, dict)]
            return [" ".join(c for c in contents if isinstance(c, str))]
        if isinstance(record, dict) and {"prompt", "response"} <= set(record):
            return [f"{record['prompt']} {record['response']}"]
        raise ValueError(f'{where}: expected {{"prompt", "response"}} or {{"messages": [...]}}')
    return [" ".join(_strings(record))]  # records: every text field of the line, in order


def read_items(eval_set: EvalSetFile) -> list[str]:
    """The set's items: one string per example (JSONL line; a text file is one item)."""
    items: list[str] = []
    for file in _files(Path(eval_set.path), eval_set.name):
        if eval_set.kind == "text":
            items.append(file.read_text(encoding="utf-8", errors="replace"))
            continue
        lines = file.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{eval_set.name} = {file}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
            items += _record_items(eval_set.kind, record, where)
    return [item for item in items if item.strip()]
