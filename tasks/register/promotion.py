"""The promotion gate: does a new version beat the registered `champion` by the set margin?

A version's evaluation lives in its tags (all numbers as JSON in `lmforge.eval`, the gate's
metrics also one by one as `lmforge.eval.<metric>`), so the gate needs nothing
but the registry. The decision records both sets of numbers; registry.py writes it to the new
version's description and tags and moves the `champion` alias only when `promote` is true.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from model.guard import HEALTH_TAG, PROMOTABLE
from tasks.config import RegisterConfig

EVAL_TAG = "lmforge.eval."
LOWER_IS_BETTER = ("loss", "perplexity", "bpb", "nll")


def lower_is_better(metric: str) -> bool:
    """Loss-like metrics (loss, perplexity, bits per byte, nll) improve downwards."""
    return metric.endswith(LOWER_IS_BETTER)


def relative_gain(metric: str, candidate: float, champion: float) -> float:
    """How much better the candidate is, as a fraction of the champion's value (>0: better)."""
    diff = champion - candidate if lower_is_better(metric) else candidate - champion
    if champion == 0:
        return math.inf if diff > 0 else 0.0
    return diff / abs(champion)


@dataclass
class Decision:
    """Whether to promote, why, and the numbers compared."""

    promote: bool
    reason: str
    candidate: dict[str, float]
    champion: dict[str, float] = field(default_factory=dict)
    champion_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": "promoted to champion" if self.promote else "not promoted",
            "reason": self.reason,
            "candidate": self.candidate,
            "champion": self.champion,
            "champion_version": self.champion_version,
        }

    def tags(self) -> dict[str, str]:
        """The decision as model-version tags."""
        tags = {
            "lmforge.promotion.decision": self.to_dict()["decision"],
            "lmforge.promotion.reason": self.reason[:5000],
        }
        if self.champion_version is not None:
            tags["lmforge.promotion.champion_version"] = str(self.champion_version)
        if self.champion:
            tags["lmforge.promotion.champion"] = json.dumps(self.champion)
        return tags


def eval_tags(metrics: dict[str, float], gate_metrics: list[str]) -> dict[str, str]:
    """A version's evaluation as tags: every number in one JSON tag (`lmforge.eval`), and the
    gate's metrics one by one, where the MLflow page shows them (17 tags crowded it)."""
    tags = {EVAL_TAG.rstrip("."): json.dumps({k: float(v) for k, v in sorted(metrics.items())})}
    tags |= {f"{EVAL_TAG}{m}": repr(float(metrics[m])) for m in gate_metrics if m in metrics}
    return tags


def recorded_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The evaluation a version's tags record (the JSON tag, and per-metric tags, as older
    versions have only those)."""
    found = {k.removeprefix(EVAL_TAG): float(v) for k, v in tags.items() if k.startswith(EVAL_TAG)}
    if EVAL_TAG.rstrip(".") in tags:
        found |= {k: float(v) for k, v in json.loads(tags[EVAL_TAG.rstrip(".")]).items()}
    return found


def unchecked_sets(required: list[dict[str, str]], curate_stats: dict[str, Any]) -> list[str]:
    """The evaluation sets in `required` (name, path, sha256) that the curate output whose
    `curate_stats` are given did not check its documents against (matched by content)."""
    checked = {s["sha256"] for s in curate_stats.get("decontamination", {}).get("sets", [])}
    return [
        f"{r['name']} = {r['path']} (sha256 {r['sha256'][:12]})"
        for r in required
        if r["sha256"] not in checked
    ]


def decide(
    settings: RegisterConfig,
    candidate: dict[str, float],
    champion_tags: dict[str, str] | None,
    champion_version: int | None,
    health: str | None = None,
    unchecked: list[str] | None = None,
) -> Decision:
    """Compare `candidate` metrics with the champion's tags on `settings.promote_metrics`.
    `health` is the training run's `lmforge.train.health` tag (model/guard.py): a run that did
    not end healthy or recovered is never promoted (None: a run from before the tag).
    `unchecked`: the evaluation sets the candidate is scored on that its training data was not
    checked against (unchecked_sets); a candidate with any is never promoted, since leakage
    could be what beats the champion."""
    missing = [m for m in settings.promote_metrics if m not in candidate]
    if missing:
        raise ValueError(
            f"register.promote_metrics names {missing}, which the evaluation did not produce "
            f"(it has: {sorted(candidate)}); switch those evaluation sets on or change the list"
        )
    mine = {m: float(candidate[m]) for m in settings.promote_metrics}
    if health is not None and health not in PROMOTABLE:
        reason = f"the training run ended {health} ({HEALTH_TAG}): not promoted"
        return Decision(False, reason, mine, {}, champion_version)
    if unchecked:
        reason = (
            f"the training data was not checked against the evaluation set(s) it is scored on: "
            f"{'; '.join(unchecked)}; not promoted (run curate with "
            "curate.decontaminate.enabled = true and the same evaluate settings, then train again)"
        )
        return Decision(False, reason, mine, {}, champion_version)
    if champion_tags is None:
        return Decision(True, "first version with an evaluation: no champion to beat", mine)
    recorded = recorded_metrics(champion_tags)
    theirs = {m: recorded[m] for m in settings.promote_metrics if m in recorded}
    lacking = [m for m in settings.promote_metrics if m not in theirs]
    if lacking:
        reason = f"champion version {champion_version} has no recorded {lacking} to compare"
        return Decision(False, reason, mine, theirs, champion_version)
    lines, promote = [], True
    for m in settings.promote_metrics:
        gain = relative_gain(m, mine[m], theirs[m])
        better = gain > settings.promote_margin
        promote &= better
        direction = "lower" if lower_is_better(m) else "higher"
        lines.append(
            f"{m}: {mine[m]:.4f} vs champion {theirs[m]:.4f} ({direction} is better, "
            f"gain {gain:+.2%}, needs > {settings.promote_margin:.2%}: "
            f"{'beats' if better else 'does not beat'})"
        )
    return Decision(promote, "; ".join(lines), mine, theirs, champion_version)
