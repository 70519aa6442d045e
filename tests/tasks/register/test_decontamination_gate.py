"""The promotion gate refuses a candidate whose training data was not checked against the
evaluation sets it is scored on; the model card lists the sets checked and what was found."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.common import tracking
from tasks.curate.decontaminate import build_index
from tasks.curate.eval_sets import DecontaminateConfig, evaluation_sets
from tasks.register.model_card import decontamination_section
from tasks.register.promotion import decide, unchecked_sets
from tasks.register.registry import register_version, scored_sets

from .conftest import embedded_config

DATA = Path(__file__).resolve().parents[2] / "data" / "evalsets"


def piqa_choices(out: Path) -> Path:
    """The committed PIQA slice as an evaluate.choices JSONL."""
    goals = (DATA / "piqa" / "valid.head30.jsonl").read_text().splitlines()
    labels = (DATA / "piqa" / "valid-labels.head30.lst").read_text().split()
    lines = []
    for line, label in zip(goals, labels, strict=True):
        item = json.loads(line)
        choices = [item["sol1"], item["sol2"]]
        lines.append(json.dumps({"context": item["goal"], "choices": choices, "label": int(label)}))
    out.write_text("\n".join(lines) + "\n")
    return out


def curate_stats(config, enabled: bool = True) -> dict:
    """What a curate output with these settings records about decontamination."""
    sets = evaluation_sets(config) if enabled else []
    index = build_index(sets, DecontaminateConfig())
    records = [dict(s, documents_contaminated=0) for s in index.sets]
    summary = {"ngram": 13, "min_item_words": 8, "action": "drop", "sets": records}
    summary |= {"documents_contaminated": 0, "ngrams_matched": 0, "spans_redacted": 0}
    return {"decontamination": {**summary, "enabled": enabled}}


def test_a_candidate_not_checked_against_the_gates_sets_is_refused(tiny_model, tmp_path):
    choices = piqa_choices(tmp_path / "piqa.jsonl")
    gsm8k = DATA / "gsm8k" / "test.head30.jsonl"
    config = embedded_config(
        tmp_path, f"evaluate.choices='{choices}'", f"curate.decontaminate.against=['{gsm8k}']"
    )
    required = scored_sets(config)
    assert [r["name"] for r in required] == ["evaluate.choices"]  # `against` is not scored
    checked, unchecked = curate_stats(config), curate_stats(config, enabled=False)
    assert unchecked_sets(required, checked) == []
    missing = unchecked_sets(required, unchecked)
    assert missing == [f"evaluate.choices = {choices} (sha256 {required[0]['sha256'][:12]})"]
    assert unchecked_sets(required, {}) == missing  # a curate output from before the stage
    choices.write_text(choices.read_text().replace("guinea pig", "hamster"))
    edited = scored_sets(config)  # the file changed after curate checked it
    assert unchecked_sets(edited, checked) == [
        missing[0].replace(required[0]["sha256"][:12], edited[0]["sha256"][:12])
    ]
    decided = {}
    for name, stats in (("unchecked", unchecked), ("checked", checked)):
        run_id = tracking.start_run(config, "train-test", {"lmforge.train.health": "healthy"})
        out = tmp_path / name
        out.mkdir()
        decided[name] = register_version(
            config,
            "decontaminated",
            tiny_model,
            run_id,
            {},
            {"val_bpb": 2.0},
            lambda d: "# card\n",
            out,
            unchecked=unchecked_sets(required, stats),
        )
    refused = decided["unchecked"]["promotion"]
    assert refused["decision"] == "not promoted"  # even with no champion to beat
    assert "not checked against the evaluation set(s) it is scored on" in refused["reason"]
    assert "evaluate.choices" in refused["reason"]
    assert "curate.decontaminate.enabled" in refused["reason"]
    assert decided["unchecked"]["aliases"] == ["candidate"]
    assert decided["checked"]["aliases"] == ["candidate", "champion"]


def test_the_gate_refuses_before_comparing_numbers():
    from tasks.config import RegisterConfig

    champion = {"lmforge.eval.val_bpb": "2.0"}
    better = decide(RegisterConfig(), {"val_bpb": 1.0}, champion, 1, "healthy", ["evaluate.sft"])
    assert not better.promote and "evaluate.sft" in better.reason
    assert decide(RegisterConfig(), {"val_bpb": 1.0}, champion, 1, "healthy", []).promote


def test_the_model_card_lists_the_sets_checked(tmp_path):
    config = embedded_config(tmp_path, f"evaluate.choices='{piqa_choices(tmp_path / 'p.jsonl')}'")
    card = "\n".join(decontamination_section(curate_stats(config)))
    assert "| evaluate.choices |" in card and "| set | path | sha256 |" in card
    assert "Not checked" in "\n".join(decontamination_section({}))
