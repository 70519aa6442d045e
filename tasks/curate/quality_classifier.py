"""The quality classifier itself: a fastText model of "reads like the reference" (DCLM-style).

DCLM (Li et al. 2024) trains a fastText bigram classifier with trusted text as positives and
random crawl documents as negatives, and keeps the crawl documents it scores highest. Here the
positives come from `curate.quality.reference` and the negatives from the documents curate is
given. Texts are normalised before both training and scoring as DCLM does (lower-cased,
whitespace collapsed; fastText reads one example per line), except that each line break becomes
the token `__nl__` instead of a space: the line structure is the clearest trace boilerplate
leaves (a menu or footer is a run of short lines). On the extraction benchmark's held-out pages
(bench/quality.py) that took ROC AUC from 0.90 to 0.96 (200 epochs, lr 1, dim 10). Training
runs on one thread with a fixed seed, so the same texts and settings give a byte-identical
model file and the same scores; its sha256 names the artifact.

This module holds no Spark code (tasks/curate/quality.py is the curate stage), so the config
tree and the benchmark import it cheaply; fastText itself is imported where it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from model.config import Checked

POSITIVE, NEGATIVE = "__label__hq", "__label__cc"
REFERENCE_SUFFIXES = (".txt", ".jsonl", ".parquet")


@dataclass
class QualityConfig(Checked):
    """`curate.quality`: the fastText quality classifier, the last curate stage (off by default:
    it needs a reference set of trusted text)."""

    section: ClassVar[str] = "curate.quality"

    enabled: bool = False
    """Train the classifier, write `meta.quality_score` and drop by `threshold` or
    `keep_top_fraction`."""
    reference: str = ""
    """The positives: a .txt file or folder of them (one document per file), .jsonl (one
    {"text": ...} per line) or Parquet (a file or folder, a `text` column)."""
    negatives_ratio: float = 1.0
    """Negatives per positive, sampled from the crawl documents curate is given (> 0)."""
    max_negatives: int = 100_000
    """At most this many negatives are collected to the driver (>= 1)."""
    seed: int = 1
    """Seed of the negative sample, the training file's order and fastText."""
    epoch: int = 50
    """fastText `epoch` (>= 1). On 64 benchmark pages (bench/quality.py, 3-fold
    cross-validation) 50 epochs gave AUC 0.918, fastText's own 5 epochs (lr 0.1, dim 100)
    0.914, 200 epochs 0.924; a reference of millions of documents needs fewer."""
    lr: float = 0.5
    """fastText `lr` (> 0)."""
    word_ngrams: int = 2
    """fastText `wordNgrams` (>= 1; DCLM uses bigrams)."""
    dim: int = 10
    """fastText `dim`, the embedding size (>= 1; two labels need few dimensions)."""
    min_count: int = 1
    """fastText `minCount`: words seen fewer times are left out (>= 1)."""
    threshold: float = 0.0
    """Drop a document whose score (the probability of the reference label) is below this as
    `low_quality` (in [0, 1]; 0 with `keep_top_fraction` 0: score only, drop nothing)."""
    keep_top_fraction: float = 0.0
    """Instead of `threshold`: keep this share of the documents, the highest-scored (in [0, 1];
    0 = off). Set one of the two."""

    def check(self) -> None:
        self.require(
            not self.enabled or bool(self.reference.strip()),
            "reference",
            "the quality classifier needs trusted text as positives: set curate.quality.reference "
            "to a folder of .txt/.jsonl files or to Parquet with a text column, or set "
            "curate.quality.enabled = false",
            "enabled",
        )
        self.positive("negatives_ratio", "lr")
        self.at_least(1, "max_negatives", "epoch", "word_ngrams", "dim", "min_count")
        self.fraction("threshold", "keep_top_fraction")
        self.require(
            self.threshold == 0.0 or self.keep_top_fraction == 0.0,
            "keep_top_fraction",
            "set either curate.quality.threshold or curate.quality.keep_top_fraction, not both "
            "(set the other to 0)",
            "threshold",
        )


NEWLINE = "__nl__"


def normalize(text: str) -> str:
    """Lower-case, whitespace collapsed, each line break (blank lines left out) `__nl__`."""
    lines = (" ".join(line.lower().split()) for line in text.split("\n"))
    return f" {NEWLINE} ".join(line for line in lines if line)


def reference_files(reference: str) -> list[Path]:
    """The files of `reference` that hold texts (sorted); an error says what to fix."""
    root = Path(reference)
    if not root.exists():
        raise FileNotFoundError(
            f"curate.quality.reference = {reference!r}: no such file or folder; point it at "
            "trusted text (.txt, .jsonl or Parquet)"
        )
    if root.is_file():
        files = [root]
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix in REFERENCE_SUFFIXES and not p.name.startswith(("_", "."))
        )
    wrong = [p for p in files if p.suffix not in REFERENCE_SUFFIXES]
    if not files or wrong:
        raise ValueError(
            f"curate.quality.reference = {reference!r}: no .txt, .jsonl or .parquet file there; "
            'give one document per .txt file, {"text": ...} per .jsonl line, or Parquet with a '
            "text column"
        )
    return files


def _texts_of(path: Path) -> list[str]:
    if path.suffix == ".txt":
        return [path.read_text(encoding="utf-8")]
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            return [json.loads(line)["text"] for line in lines if line.strip()]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f'curate.quality.reference: {path} is not JSON lines of {{"text": ...}}: {exc}'
            ) from exc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if "text" not in table.column_names:
        raise ValueError(
            f"curate.quality.reference: {path} has no `text` column (columns: "
            f"{', '.join(table.column_names)})"
        )
    return [t for t in table.column("text").to_pylist() if t is not None]


def read_reference(reference: str) -> list[str]:
    """The non-empty texts of `curate.quality.reference`, normalised, in file order."""
    texts = [normalize(t) for path in reference_files(reference) for t in _texts_of(path)]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(
            f"curate.quality.reference = {reference!r}: its files hold no text; the classifier "
            "needs positives"
        )
    return texts


def reference_sha256(reference: str) -> str:
    """sha256 over the reference files' relative paths and bytes: its content's identity."""
    root, digest = Path(reference), hashlib.sha256()
    for path in reference_files(reference):
        name = path.name if root.is_file() else str(path.relative_to(root))
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_quality_model(
    positives: Sequence[str], negatives: Sequence[str], config: QualityConfig, model_path: Path
) -> dict[str, Any]:
    """Train the classifier on normalised texts (empty ones left out), save it to
    `model_path` (through a temporary file and a rename) and return its counts and sha256."""
    import fasttext

    examples = [(POSITIVE, t) for t in map(normalize, positives) if t]
    examples += [(NEGATIVE, t) for t in map(normalize, negatives) if t]
    n_pos = sum(label == POSITIVE for label, _ in examples)
    if n_pos == 0 or n_pos == len(examples):
        raise ValueError(
            f"quality classifier: {n_pos} positives and {len(examples) - n_pos} negatives; "
            "training needs both (check curate.quality.reference and the crawl's documents)"
        )
    random.Random(config.seed).shuffle(examples)  # SGD reads the file in order
    model_path = Path(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{label} {text}\n" for label, text in examples))
        try:
            model = fasttext.train_supervised(
                input=str(train_file),
                epoch=config.epoch,
                lr=config.lr,
                wordNgrams=config.word_ngrams,
                dim=config.dim,
                minCount=config.min_count,
                loss="softmax",
                thread=1,  # fastText is deterministic only on one thread
                seed=config.seed,
                verbose=0,
            )
        except RuntimeError as exc:  # "Encountered NaN.": the updates diverged
            raise RuntimeError(
                f"quality classifier: fastText training failed ({exc}); lower curate.quality.lr "
                f"(now {config.lr}) or curate.quality.epoch (now {config.epoch})"
            ) from exc
        partial = model_path.with_name(f".{model_path.name}.tmp")
        model.save_model(str(partial))
        os.replace(partial, model_path)
    return {
        "positives": n_pos,
        "negatives": len(examples) - n_pos,
        "sha256": file_sha256(model_path),
    }


def load_quality_model(model_path: str | Path) -> Any:
    """The saved fastText model."""
    import fasttext

    return fasttext.load_model(str(model_path))


def quality_scores(model: Any, texts: Sequence[str]) -> list[float]:
    """Probability of the reference label for each text (normalised here)."""
    if not texts:
        return []
    labels, probs = model.predict([normalize(t or "") for t in texts], k=2)
    return [
        float(dict(zip(lab, p, strict=True)).get(POSITIVE, 0.0))
        for lab, p in zip(labels, probs, strict=True)
    ]
