"""Typed configuration of training: a plain dataclass, defaults in code, checked when built.

The model's own shape, `ModelConfig`, lives beside the model in model/gpt.py (like nanoGPT's
GPTConfig), so that file needs nothing but torch.

Field docs follow torchtitan's config dataclasses: a docstring under each field, choices as
`Literal` types, and the range and cross-field rules in `validate()`, which `__post_init__`
runs (and `tasks.config.load_config` again once its layers are applied). A rule that fails
raises `SettingError`, naming the key, its value and what to do.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, NoReturn


class SettingError(ValueError):
    """A setting that cannot be used: `<section>.<key> = <value>: <problem>`.

    `related` names the other keys of the same section the failed rule reads (a cross-field
    rule), so that a caller that knows where each value came from can say so."""

    def __init__(
        self, section: str, key: str, value: Any, problem: str, related: tuple[str, ...] = ()
    ) -> None:
        self.section, self.key, self.value = section, key, value
        self.problem, self.related = problem, tuple(related)
        super().__init__(f"{section}.{key} = {value!r}: {problem}")


@functools.cache
def literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """The `Literal[...]` fields of dataclass `cls` and their allowed values."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: typing.get_args(hints[f.name])
        for f in fields(cls)
        if typing.get_origin(hints[f.name]) is Literal
    }


class Checked:
    """Mixin of a config dataclass that checks itself: `Literal` choices, then `check()`.

    `validate()` runs in `__post_init__`; `load_config` calls it again after it has set the
    fields one by one. A subclass sets `section` (its dotted place in the config tree) and
    writes its rules in `check()` with `require`."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for key, choices in literal_choices(type(self)).items():
            value = getattr(self, key)
            # the choice's own type too: True == 1 and 2.0 == 2, yet neither is a choice
            if not any(type(value) is type(c) and value == c for c in choices):
                listed = ", ".join(repr(c) for c in choices)
                self.fail(key, f"{key} must be one of {listed}")
        self.check()

    def check(self) -> None:
        """The range and cross-field rules of this section (none by default)."""

    def fail(self, key: str, problem: str, *related: str) -> NoReturn:
        raise SettingError(self.section, key, getattr(self, key), problem, related)

    def require(self, ok: bool, key: str, problem: str, *related: str) -> None:
        """Raise SettingError for `key` unless `ok`; `related`: other keys the rule reads."""
        if not ok:
            self.fail(key, problem, *related)

    def at_least(self, minimum: float, *keys: str) -> None:
        """Each of `keys` must be >= `minimum`."""
        for key in keys:
            self.require(getattr(self, key) >= minimum, key, f"{key} must be >= {minimum}")

    def positive(self, *keys: str) -> None:
        """Each of `keys` must be > 0."""
        for key in keys:
            self.require(getattr(self, key) > 0, key, f"{key} must be > 0")

    def fraction(self, *keys: str) -> None:
        """Each of `keys` must be in [0, 1]."""
        for key in keys:
            value = getattr(self, key)
            self.require(0.0 <= value <= 1.0, key, f"{key} must be in [0, 1]")


Precision = Literal["bf16", "fp16", "fp32"]
Schedule = Literal["cosine", "wsd"]
CheckpointArtifacts = Literal["last", "all", "none"]
Optimizer = Literal["adamw", "muon"]


@dataclass
class TrainConfig(Checked):
    """One training run: global batch = micro_batch * grad_accum * ranks sequences, where ranks
    is `num_ranks`, times the hosts in `hostfile` when one is given."""

    section: ClassVar[str] = "train"

    steps: int = 300
    """Optimizer steps of the run (>= 1)."""
    micro_batch: int = 16
    """Sequences per rank per forward/backward pass (>= 1)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (>= 1)."""
    num_ranks: int = 1
    """Ranks on this host; with a hostfile, ranks per host (>= 1)."""
    hostfile: str = ""
    """A DeepSpeed hostfile (`host slots=N` per line) to train across its hosts; "" = this host."""
    master_addr: str = ""
    """The first host's address the ranks rendezvous at; "" = 127.0.0.1 for one host, else the
    address DeepSpeed reads from the first host over ssh (`hostname -I`)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """0 plain data parallel; 1 shards optimizer state, 2 + gradients, 3 + parameters."""
    offload_optimizer: bool = False
    """Optimizer state in CPU memory (ZeRO >= 1)."""
    offload_params: bool = False
    """Parameters in CPU memory (ZeRO 3)."""
    precision: Precision = "bf16"
    """bf16, fp16 (dynamic loss scaling, for GPUs without bf16; not on CPU ranks) or fp32."""
    lr: float = 3e-3
    """Peak learning rate, reached after warmup (> 0)."""
    min_lr: float = 3e-4
    """The rate the schedule decays to (0 <= min_lr <= lr)."""
    warmup_steps: int = 20
    """Steps of linear warmup from lr / warmup_steps to lr (>= 0)."""
    schedule: Schedule = "cosine"
    """After warmup: "cosine" to min_lr, or "wsd" (warmup-stable-decay)."""
    decay_fraction: float = 0.2
    """wsd: the last fraction of steps decays linearly to min_lr (in [0, 1])."""
    weight_decay: float = 0.1
    """AdamW weight decay of matrices and embeddings (>= 0)."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (>= 0; 0 = off; must be 0 with Muon)."""
    optimizer: Optimizer = "adamw"
    """"adamw": AdamW for every parameter. "muon": Muon (momentum orthogonalised by Newton-Schulz,
    DeepSpeed's MuonWithAuxAdam) for the blocks' matrices, AdamW at `lr` for the embedding, the
    head, the norms' gains and biases (model/engine.py; ZeRO 0 to 2)."""
    muon_lr: float = 0.02
    """Muon's peak learning rate (> 0; in units of spectral norm per step); the schedule scales
    it as it scales `lr`."""
    muon_momentum: float = 0.95
    """Muon's Nesterov momentum (in [0, 1))."""
    muon_weight_decay: float = 0.0
    """Muon's decoupled weight decay (>= 0), applied as lr * decay per step."""
    init_from: str = ""
    """Start from this model instead of from scratch: `models:/<name>@<alias>` or
    `models:/<name>/<version>` (a registered or imported version, `lmforge import`) or an
    exported model folder. Its shape replaces the model section and its tokenizer is used
    (unless tokenize.tokenizer_file names one); "" = from scratch."""
    ema_decay: float = 0.0
    """0 = off; else the decay (in [0, 1)) of a float32 moving average of the weights (of their
    bf16 copies under bf16), which is evaluated (val_loss_ema) and exported instead of the last
    weights (model/ema.py; ZeRO <= 2)."""
    activation_checkpointing: bool = False
    """Recompute each block in the backward: less memory."""
    compile: bool = False
    """torch.compile the model before DeepSpeed wraps it."""
    log_every: int = 10
    """Log training metrics every N steps (>= 1)."""
    eval_every: int = 100
    """Evaluate the held-out loss every N steps, and at the end (>= 1)."""
    eval_batches: int = 8
    """Held-out batches per evaluation (>= 1)."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N steps (0: at the end only)."""
    keep_checkpoints: int = 2
    """The newest K complete checkpoints are kept (>= 1)."""
    checkpoint_artifacts: CheckpointArtifacts = "last"
    """Checkpoints logged to MLflow: "last", "all" (each one saved) or "none"."""
    max_bad_steps: int = 3
    """Guard (model/guard.py): a step with a non-finite loss or gradient norm is skipped and
    counted; this many in a row (>= 1) roll back to the last complete checkpoint."""
    spike_window: int = 50
    """Guard: a loss above the mean + spike_sigmas x std of the last spike_window good steps
    rolls back (0 = no spike check)."""
    spike_sigmas: float = 6.0
    """Guard: the spike threshold in standard deviations (> 0)."""
    max_rollbacks: int = 2
    """Guard: a rollback past this many (or with no checkpoint yet) stops the run (>= 0)."""
    rollback_lr_factor: float = 0.5
    """Guard: each rollback scales the learning rate by this factor (in (0, 1])."""
    peak_flops: float = 0.0
    """Peak FLOP/s of one device, for MFU (python -m model.peak_flops); 0 = no MFU."""
    seed: int = 1337
    """Seed of the weights' initialisation and the data order."""
    torch_threads: int = 0
    """Threads per rank; 0 = this machine's cores shared evenly by the ranks on it."""

    def check(self) -> None:
        self.at_least(1, "steps", "micro_batch", "grad_accum", "num_ranks", "keep_checkpoints")
        self.at_least(1, "log_every", "eval_every", "eval_batches")
        self.at_least(0, "warmup_steps", "checkpoint_every", "torch_threads")
        self.at_least(0, "weight_decay", "grad_clip", "peak_flops", "min_lr")
        self.positive("lr")
        self.require(
            self.min_lr <= self.lr,
            "min_lr",
            f"min_lr must be <= train.lr = {self.lr!r} (the schedule decays to it)",
            "lr",
        )
        self.fraction("decay_fraction")
        self.require(
            self.zero_stage >= 1 or not self.offload_optimizer,
            "offload_optimizer",
            "offload_optimizer needs train.zero_stage >= 1 (set zero_stage = 1, 2 or 3)",
            "zero_stage",
        )
        self.require(
            self.zero_stage == 3 or not self.offload_params,
            "offload_params",
            "offload_params needs train.zero_stage = 3",
            "zero_stage",
        )
        self.require(
            0.0 <= self.ema_decay < 1.0,
            "ema_decay",
            "ema_decay must be in [0, 1) (0 = off)",
        )
        self.require(
            not self.ema_decay or self.zero_stage <= 2,
            "ema_decay",
            "ema_decay needs train.zero_stage <= 2: ZeRO 3 splits the weights over the ranks, "
            "so no rank holds the weights to average; use stage 2 or set ema_decay = 0",
            "zero_stage",
        )
        self.positive("muon_lr")
        self.at_least(0, "muon_weight_decay")
        self.require(
            0.0 <= self.muon_momentum < 1.0, "muon_momentum", "muon_momentum must be in [0, 1)"
        )
        if self.optimizer == "muon":
            self.require(
                self.zero_stage <= 2,
                "optimizer",
                "optimizer = 'muon' needs train.zero_stage <= 2 (Muon runs on whole matrices; "
                "ZeRO 3's Muon path is untested here): use stage 1 or 2, or optimizer = 'adamw'",
                "zero_stage",
            )
            self.require(
                not self.offload_optimizer,
                "optimizer",
                "optimizer = 'muon' does not run with train.offload_optimizer (untested): set "
                "offload_optimizer = false, or optimizer = 'adamw'",
                "offload_optimizer",
            )
            self.require(
                self.grad_clip == 0,
                "grad_clip",
                "grad_clip must be 0 with train.optimizer = 'muon': under ZeRO DeepSpeed clips the "
                "orthogonalised update, whose norm is ~sqrt(width) per matrix, so any clip "
                "would shrink Muon's step many times over; set grad_clip = 0",
                "optimizer",
            )
        self.at_least(1, "max_bad_steps")
        self.at_least(0, "spike_window", "max_rollbacks")
        self.positive("spike_sigmas")
        self.require(
            0.0 < self.rollback_lr_factor <= 1.0,
            "rollback_lr_factor",
            "rollback_lr_factor must be in (0, 1]",
        )
