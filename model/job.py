"""One training job: what the train and finetune steps hand the ranks, typed end to end.

The step builds a `Job`; `model.launch.launch_training` writes it as job.json (the file is how
it crosses into the `deepspeed` ranks); each rank reads it back with `load_job`. The JSON keys:
`model` (ModelConfig), `train` (TrainConfig), `data_dir` (a tokenize output), `out_dir`,
`tracking` (`uri`, `run_id`), optionally `init_from` (an exported model folder whose weights
start the run), `sft` (`train`, `val` JSONL files and `tokenizer`: fine-tune on chat examples
instead of token shards; `data_dir` is then not needed) and `lora` (`rank`, `alpha`, `dropout`,
`targets`: train low-rank adapters on the frozen `init_from` weights, model/lora.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import TrainConfig
from model.gpt import ModelConfig
from model.lora import LoraSettings


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
    lora: LoraSettings | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for a LoRA job the ranks cannot run (before any rank starts)."""
        if self.lora is None:
            return
        if self.init_from is None:
            raise ValueError(
                "finetune.method = 'lora' adapts a trained model: the job needs init_from "
                "(the base model folder whose frozen weights the adapters train on)"
            )
        if self.train.zero_stage == 3:
            raise ValueError(
                "finetune.method = 'lora' with train.zero_stage = 3 is not supported: ZeRO 3 "
                "splits the frozen base weights over the ranks, and only the adapters are "
                "checkpointed; use train.zero_stage = 0, 1 or 2 (the adapters are small enough)"
            )
        if self.train.ema_decay:
            raise ValueError(
                f"finetune.method = 'lora' with train.ema_decay = {self.train.ema_decay} is not "
                "supported: the weight average covers the whole model, not the adapters; set "
                "train.ema_decay = 0 (or use finetune.method = 'full')"
            )

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
        if self.lora is not None:
            raw["lora"] = dataclasses.asdict(self.lora)
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
            lora = LoraSettings(**raw["lora"]) if raw.get("lora") else None
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
            lora,
        )


def load_job(path: Path) -> Job:
    """Read and type-check job.json."""
    return Job.from_dict(json.loads(Path(path).read_text()), str(path))
