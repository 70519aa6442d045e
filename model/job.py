"""One training job: what the train and finetune steps hand the ranks, typed end to end.

The step builds a `Job`; `model.launch.launch_training` writes it as job.json (the file is how
it crosses into the `deepspeed` ranks); each rank reads it back with `load_job`. The JSON keys:
`model` (ModelConfig), `train` (TrainConfig), `data_dir` (a tokenize output), `out_dir`,
`tracking` (`uri`, `run_id`), optionally `init_from` (an exported model folder whose weights
start the run) and `sft` (`train`, `val` JSONL files and `tokenizer`: fine-tune on chat examples
instead of token shards; `data_dir` is then not needed).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import TrainConfig
from model.gpt import ModelConfig


@dataclass
class Job:
    """One training job."""

    model: ModelConfig
    train: TrainConfig
    data_dir: Path | None
    out_dir: Path
    tracking_uri: str = ""
    run_id: str = ""
    init_from: Path | None = None
    sft: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job.json form."""
        raw: dict[str, Any] = {
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "out_dir": str(self.out_dir),
            "tracking": {"uri": self.tracking_uri, "run_id": self.run_id},
        }
        if self.init_from is not None:
            raw["init_from"] = str(self.init_from)
        if self.sft is not None:
            raw["sft"] = dict(self.sft)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "job") -> Job:
        """Type-check the job.json form; a missing or unknown key fails with its name."""
        sft = raw.get("sft")
        missing = {"model", "train", "out_dir"} - set(raw) | (
            {"data_dir"} - set(raw) if not sft else set()
        )
        if sft is not None and set(sft) != {"train", "val", "tokenizer"}:
            raise ValueError(
                f"{source}: 'sft' needs exactly the keys train, val, tokenizer; got {sft}"
            )
        if missing:
            raise ValueError(f"{source}: missing key(s) {sorted(missing)}")
        try:
            model, train = ModelConfig(**raw["model"]), TrainConfig(**raw["train"])
        except TypeError as err:
            raise ValueError(f"{source}: {err}") from err
        tracking = raw.get("tracking") or {}
        return cls(
            model,
            train,
            Path(raw["data_dir"]) if raw.get("data_dir") else None,
            Path(raw["out_dir"]),
            tracking.get("uri", ""),
            tracking.get("run_id", ""),
            Path(raw["init_from"]) if raw.get("init_from") else None,
            sft,
        )


def load_job(path: Path) -> Job:
    """Read and type-check job.json."""
    return Job.from_dict(json.loads(Path(path).read_text()), str(path))
