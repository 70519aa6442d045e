"""An exponential moving average (EMA) of the weights, evaluated and exported instead of them.

After every optimizer step: average = d * average + (1 - d) * weights, with
d = min(decay, (1 + n) / (10 + n)) after n updates, so the first steps are not frozen in by a
near-1 decay. On small data a model's last weights are noisy and over-fitted; their average is
smoother and scores better (bench/train_quality.py; the figures are in bench/README.md).

The average is kept in float32 on every rank (4 bytes per parameter, plus a copy in the
module's dtype while it is swapped in), from the parameters the engine's module holds: the
full weights on every rank under ZeRO 0, 1 and 2. Under bf16 those are the bf16 copies of
the fp32 master weights, so it is the average of rounded weights (finer than any one of them,
but not the average of the masters). ZeRO 3 splits the parameters over the ranks, so it is
refused (`engine.check_train_config`). It is saved with each checkpoint (`ema.safetensors`,
written by rank 0, with its decay and update count) and restored on resume, so a resumed
run's average is bit-identical to an uninterrupted run's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

EMA_FILE = "ema.safetensors"


class WeightAverage:
    """The float32 EMA of `module`'s parameters (tied ones once)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.params = dict(module.named_parameters())
        self.average = {name: p.detach().float().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in (after each optimizer step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, param in self.params.items():
            self.average[name].mul_(d).add_(param.detach().float(), alpha=1 - d)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The module holds the average (in its own dtype) for the block, then its weights."""
        with torch.no_grad():
            saved = {name: p.detach().clone() for name, p in self.params.items()}
            for name, param in self.params.items():
                param.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self.params.items():
                    param.copy_(saved[name])

    def save(self, folder: Path) -> None:
        """Write the average into a checkpoint folder."""
        meta = {"updates": str(self.updates), "decay": repr(self.decay)}
        save_file(self.average, str(Path(folder) / EMA_FILE), metadata=meta)

    def load(self, folder: Path) -> None:
        """Restore what `save` wrote in a checkpoint folder."""
        path = Path(folder) / EMA_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint was saved with train.ema_decay = 0; resume "
                f"with the same setting, or start afresh in a new output folder"
            )
        with safe_open(str(path), "pt") as handle:  # one read: metadata and tensors
            meta = handle.metadata()
            loaded = {name: handle.get_tensor(name) for name in handle.keys()}
        saved_decay = float(meta.get("decay", self.decay))
        if saved_decay != self.decay:
            warnings.warn(
                f"{path} was averaged with train.ema_decay={saved_decay}; continuing with "
                f"{self.decay}",
                stacklevel=2,
            )
        if set(loaded) != set(self.average):
            raise ValueError(f"{path} holds other weights than this model's: {sorted(loaded)[:5]}")
        for name, tensor in loaded.items():  # in place: the average stays on its device
            if tensor.shape != self.average[name].shape:
                raise ValueError(f"{path}: {name} is {tuple(tensor.shape)}, not this model's")
            self.average[name].copy_(tensor)
        self.updates = int(meta["updates"])
