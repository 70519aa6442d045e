"""DeepSpeed checkpoints that a killed run can resume from exactly, and that are never half-read.

Every rank saves its shard with `engine.save_checkpoint` and its own `client-rank<R>.json`:
the step, the data loader position and every RNG state (python, numpy, torch). After a barrier
rank 0 writes `COMPLETE.json` last, with the sha256 of every file of the checkpoint, then deletes
all but the newest `keep` complete checkpoints (and older partial ones a crash left). On start,
the newest checkpoint whose marker exists and whose files still match it is loaded; a partial or
damaged one is skipped with a warning. Assumes checkpoints on a filesystem all ranks share (one
host, or a shared mount). A LoRA run saves only its trainable parameters (the adapters and their
optimizer state) and loads them back non-strictly: its frozen base weights come from init_from.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from model.files import file_hashes

MARKER = "COMPLETE.json"


def tag_of(step: int) -> str:
    """The checkpoint folder name of optimizer step `step`, sortable by name."""
    return f"step{step:08d}"


def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's global RNG states as JSON-able values."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "python": json.loads(json.dumps(random.getstate())),
        "numpy": numpy_state,
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.array(numpy_state["state"]["key"])}
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def _file_hashes(folder: Path) -> dict[str, str]:
    return file_hashes(folder, exclude=(MARKER,))


def _drop_frozen(module: torch.nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """A state_dict post-hook: remove every name of every frozen parameter (in place)."""
    for name, param in module.named_parameters(remove_duplicate=False):
        if not param.requires_grad:
            state.pop(prefix + name, None)


def save_checkpoint(
    engine: Any,
    root: Path,
    step: int,
    client: dict[str, Any],
    keep: int,
    rank0_extra: Callable[[Path], None] | None = None,
    trainable_only: bool = False,
) -> Path:
    """Save step `step` on every rank (all ranks call), mark it complete, keep the newest `keep`.
    `rank0_extra(folder)`, when given, writes more files into the checkpoint on rank 0 (the
    weight average); the completion marker vouches for them too. `trainable_only` leaves the
    frozen parameters out (LoRA: they come again from the job's init_from)."""
    tag, rank = tag_of(step), dist.get_rank()
    # DeepSpeed's exclude_frozen_parameters drops each frozen tensor under the one name
    # `named_parameters` gives it; the tied head's second name (lm_head.weight, the whole
    # embedding) would stay in the module state, so a hook drops every name of a frozen tensor.
    hook = engine.module.register_state_dict_post_hook(_drop_frozen) if trainable_only else None
    try:
        engine.save_checkpoint(
            str(root), tag=tag, save_latest=False, exclude_frozen_parameters=trainable_only
        )
    finally:
        if hook is not None:
            hook.remove()
    folder = root / tag
    if rank0_extra is not None and rank == 0:
        rank0_extra(folder)
    state = {"step": step, **client, "rng": rng_state()}
    (folder / f"client-rank{rank}.json").write_text(json.dumps(state))
    dist.barrier()  # every rank's files are written before the marker vouches for them
    if rank == 0:
        marker = {"step": step, "world_size": dist.get_world_size(), "files": _file_hashes(folder)}
        temp = folder / f"{MARKER}.tmp"
        temp.write_text(json.dumps(marker, indent=1))
        temp.rename(folder / MARKER)
        complete = [p for p in sorted(root.glob("step*")) if (p / MARKER).is_file()]
        partial = [p for p in root.glob("step*") if p.name < tag and not (p / MARKER).is_file()]
        for old in complete[:-keep] + partial:  # keep >= 1 (checked with the config)
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()  # no rank starts a new checkpoint or reads one while rank 0 prunes
    return folder


def checkpoint_problem(folder: Path) -> str:
    """Why `folder` cannot be resumed from, or "" when its files match its completion marker."""
    marker = folder / MARKER
    if not marker.is_file():
        return f"no {MARKER}: the save did not finish"
    try:
        expected = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError):
        return f"{MARKER} is unreadable"
    actual = _file_hashes(folder)
    changed = sorted(
        set(expected) ^ set(actual) | {f for f in expected if actual.get(f) != expected[f]}
    )
    return f"files missing, extra or changed: {changed[:5]}" if changed else ""


def latest_good_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint under `root` that passes `checkpoint_problem`, warning about newer
    ones that do not; None when there is none (rank 0 checks, every rank gets the answer)."""
    choice: list[str | None] = [None]
    if dist.get_rank() == 0:
        for folder in sorted(root.glob("step*"), reverse=True):
            problem = checkpoint_problem(folder)
            if not problem:
                choice[0] = str(folder)
                break
            warnings.warn(f"skipping checkpoint {folder}: {problem}", stacklevel=2)
    dist.broadcast_object_list(choice, src=0)
    return None if choice[0] is None else Path(choice[0])


def load_checkpoint(engine: Any, folder: Path, trainable_only: bool = False) -> dict[str, Any]:
    """Load `folder` into the engine and the RNGs; returns this rank's client state.
    `trainable_only`: the checkpoint holds only the trainable parameters (see save_checkpoint);
    the module is loaded non-strictly, so its frozen weights stay as they are."""
    rank, world = dist.get_rank(), dist.get_world_size()
    saved_world = json.loads((folder / MARKER).read_text())["world_size"]
    if saved_world != world:
        raise ValueError(
            f"{folder} was saved by {saved_world} ranks, this run has {world}: resume with "
            f"train.num_ranks as before, or start afresh in a new output folder"
        )
    loaded, _ = engine.load_checkpoint(
        str(folder.parent), tag=folder.name, load_module_strict=not trainable_only
    )
    if loaded is None:
        raise RuntimeError(f"DeepSpeed could not load {folder}; see its log lines above")
    client = json.loads((folder / f"client-rank{rank}.json").read_text())
    set_rng_state(client.pop("rng"))
    return client
