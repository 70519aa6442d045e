"""The model card: one Markdown page per registered version, stored with the model's artifacts.

It traces the model to its data (each upstream step's fingerprint, document and token counts,
the curate funnel, drop reasons and boilerplate removed, the evaluation sets the documents were
checked against), and gives the training settings, the evaluation table, the samples and the
promotion decision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# the paragraph dedup stage's counts in the curate stats (tasks/curate/paragraph_dedup.py)
PARAGRAPH_STATS = (
    "paragraphs_seen",
    "paragraphs_removed",
    "paragraph_bytes_removed",
    "paragraph_documents_changed",
)


def upstream_outputs(step_path: Path) -> dict[str, dict[str, Any]]:
    """Every step output `step_path` was built from, walking each `config.json`'s inputs."""
    found: dict[str, dict[str, Any]] = {}
    pending = [Path(step_path)]
    while pending:
        path = pending.pop()
        resolved = json.loads((path / "config.json").read_text())
        stats_file = path / "stats.json"
        found[resolved["step"]] = {
            "path": str(path),
            "fingerprint": path.name,
            "config": resolved["config"],
            "stats": json.loads(stats_file.read_text()) if stats_file.is_file() else {},
        }
        pending += [Path(p) for s, p in resolved["inputs"].items() if s not in found]
    return found


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{c:.4f}" if isinstance(c, float) else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def decontamination_section(curate: dict[str, Any]) -> list[str]:
    """The evaluation sets the training documents were checked against, and what was found."""
    checked = curate.get("decontamination")
    if not checked or not checked.get("enabled", True):
        return ["### Decontamination", "", "Not checked against any evaluation set.", ""]
    lines = ["### Decontamination (evaluation sets checked)", ""]
    lines += [
        f"Word {checked['ngram']}-grams (items of {checked['min_item_words']}+ words whole), "
        f"action `{checked['action']}`: {checked['documents_contaminated']} documents "
        f"contaminated, {checked['ngrams_matched']} n-grams matched, "
        f"{checked['spans_redacted']} spans redacted.",
        "",
    ]
    rows = [
        (
            s["name"],
            s["path"],
            s["sha256"][:16],
            s["items"],
            s["ngrams"],
            s["documents_contaminated"],
        )
        for s in checked.get("sets", [])
    ]
    if not rows:
        return lines + ["No evaluation set was configured.", ""]
    header = ("set", "path", "sha256", "items", "n-grams", "contaminated docs")
    return lines + _table(rows, header)


def mix_lines(mix: dict[str, Any]) -> list[str]:
    """The train split's per-source mix (`tokenize.mix`): weights, tokens, shares, epochs."""
    rows = [
        (
            s,
            r["weight"],
            r["tokens_natural"],
            r["tokens"],
            r["target_share"],
            r["share"],
            r["epochs"],
        )
        for s, r in sorted(mix["sources"].items())
    ]
    header = ("source", "weight", "tokens natural", "tokens", "target share", "share", "epochs")
    title = f"### Source mix of the train split (tokenize.mix, seed {mix['seed']})"
    return [title, ""] + _table(rows, header)


def data_section(steps: dict[str, dict[str, Any]]) -> list[str]:
    """Lineage table, curate funnel, drop reasons and boilerplate removed, token counts."""
    lines = ["## Data lineage", ""]
    lines += _table(
        [(name, step["fingerprint"], step["path"]) for name, step in steps.items()],
        ("step", "fingerprint", "output"),
    )
    curate = steps.get("curate", {}).get("stats", {})
    if curate.get("funnel"):
        lines += ["### Curate funnel (documents left after each stage)", ""]
        # in pipeline order (stats.json sorts its keys; `funnel_order` keeps the stages' order)
        order = curate.get("funnel_order") or sorted(
            curate["funnel"], key=lambda k: (-curate["funnel"][k], k == "kept")
        )
        funnel = [(stage, curate["funnel"][stage]) for stage in order]
        lines += _table(funnel, ("stage", "documents"))
    if curate.get("quality_model_sha256"):
        lines += [
            f"Quality classifier (fastText, trained in curate on "
            f"{curate.get('quality_train_positives')} reference and "
            f"{curate.get('quality_train_negatives')} crawl texts): `quality_model.bin` sha256 "
            f"`{curate['quality_model_sha256']}`, cutoff {curate.get('quality_cutoff')}.",
            "",
        ]
    drops = [(k.removeprefix("dropped_"), v) for k, v in curate.items() if k.startswith("dropped_")]
    if drops:
        lines += ["### Dropped documents by reason", ""] + _table(sorted(drops), ("reason", "docs"))
    if "paragraphs_seen" in curate:
        rows = [(k, curate[k]) for k in PARAGRAPH_STATS if k in curate]
        lines += ["### Boilerplate removed (paragraph dedup)", ""] + _table(rows, ("count", "n"))
    lines += decontamination_section(curate)
    splits = steps.get("tokenize", {}).get("stats", {}).get("splits", {})
    if splits:
        rows = [(s, v.get("docs"), v.get("tokens")) for s, v in sorted(splits.items())]
        lines += ["### Tokens", ""] + _table(rows, ("split", "documents", "tokens"))
    mix = steps.get("tokenize", {}).get("stats", {}).get("mix")
    if mix:
        lines += mix_lines(mix)
    return lines


def model_card(
    title: str,
    tags: dict[str, str],
    steps: dict[str, dict[str, Any]],
    training: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
) -> str:
    """The card's Markdown. `training`: settings and summary; `evaluation`: metrics, samples."""
    lines = [f"# Model card: {title}", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(tags.items()) if k.startswith("lmforge.")]
    lines += [""] + data_section(steps)
    lines += ["## Training", "", "```json", json.dumps(training, indent=2, default=str), "```", ""]
    lines += ["## Evaluation", ""]
    lines += _table(sorted(evaluation["metrics"].items()), ("metric", "value"))
    lines += [
        "## Promotion",
        "",
        f"{decision['decision']}: {decision['reason']}",
        "",
        "## Samples",
        "",
    ]
    for sample in evaluation.get("samples", []):
        lines += [f"**{sample['prompt']}**", "", "```", sample["completion"], "```", ""]
    return "\n".join(lines)
