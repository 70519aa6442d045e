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
