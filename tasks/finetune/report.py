"""Markdown of a fine-tuning run: the before/after table and the fine-tuned version's card."""

from __future__ import annotations

import json
from typing import Any

from tasks.register.promotion import lower_is_better


def before_after_markdown(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A table of every held-out metric before and after fine-tuning, with the change."""
    lines = ["| metric | before | after | change |", "|---|---|---|---|"]
    for name in sorted(set(before["metrics"]) & set(after["metrics"])):
        old, new = before["metrics"][name], after["metrics"][name]
        if name.endswith("items"):
            continue
        better = new < old if lower_is_better(name) else new > old
        mark = "better" if better else ("same" if new == old else "worse")
        lines.append(f"| {name} | {old:.4f} | {new:.4f} | {new - old:+.4f} ({mark}) |")
    return "\n".join(lines) + "\n"


def training_markdown(summary: dict[str, Any]) -> str:
    """What the fine-tuning run trained and what it cost: method, trainable parameters, peak
    memory per rank and the last checkpoint's size."""
    memory = ", ".join(f"{mb:.0f}" for mb in summary.get("peak_memory_mb", []))
    lines = ["| training | value |", "|---|---|"]
    lines.append(f"| method | {summary.get('method', 'full')} |")
    lines.append(
        f"| trainable parameters | {summary.get('trainable_params', summary['num_params'])} of "
        f"{summary['num_params']} ({summary.get('trainable_fraction', 1.0):.2%}) |"
    )
    lines.append(f"| steps | {summary['steps']} |")
    lines.append(f"| peak memory per rank (MB) | {memory} |")
    lines.append(f"| checkpoint (MB) | {summary.get('checkpoint_mb', 0.0):.3f} |")
    return "\n".join(lines) + "\n"


def finetune_card(
    name: str,
    tags: dict[str, str],
    training: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    decision: dict[str, Any],
) -> str:
    """The model card of a fine-tuned version: base model and data, training, evaluation."""
    lines = [f"# Model card: {name}", "", "## Lineage", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(tags.items())]
    lines += ["", "## Fine-tuning", "", "```json", json.dumps(training, indent=2, default=str)]
    lines += ["```", "", "## Held-out evaluation (before → after)", ""]
    lines += [before_after_markdown(before, after), "## Promotion", ""]
    lines += [f"{decision['decision']}: {decision['reason']}", "", "## Samples", ""]
    for sample in after.get("samples", []):
        lines += [f"**{sample['prompt']}**", "", "```", sample["completion"], "```", ""]
    return "\n".join(lines)
