"""The step contract: fingerprinted output folders, written aside and renamed into place.

Every step writes `<work_dir>/<step>/<fingerprint>/`. The fingerprint hashes the step's resolved
config, its inputs' fingerprints and the version of the code it runs. The step builds into a
temporary sibling folder; `config.json` and `stats.json` go in, `_SUCCESS` last, then one rename
publishes it. A folder with `_SUCCESS` is complete and the step is skipped on re-run.

The code part of the fingerprint follows the imports. A step names its entry modules (its own
`__name__`, plus what it runs outside this process: `model.train` under the `deepspeed`
launcher, a script started by path); `code_version` hashes every project module (`flows`,
`model`, `tasks`) reachable from them by static imports, found with `ast`: `import a.b`,
`from a import b` (when `b` is a submodule), relative imports and imports inside functions,
plus each package `__init__.py` on the way. Editing a shared module (`tasks/common/step.py`,
`tasks/common/spark.py`, `tasks/config.py`, ...) therefore re-runs every step that imports it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_PACKAGES = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StepResult:
    """A finished step: where its output is and what it counted. Steps pass these, not data."""

    step: str
    fingerprint: str
    path: str
    stats: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


# The top-level packages of this project: imports of anything else (the standard library,
# third-party packages) are not followed, their versions are the environment's business.
PROJECT_PACKAGES = ("flows", "model", "tasks")


def code_version(entries: Iterable[str], root: str | Path | None = None) -> str:
    """16-hex-digit hash of the code the `entries` run: the files of `code_files(entries)`,
    each as its repo-relative path and bytes, in sorted path order."""
    return _code_version(_normalized(entries), _root(root))


def code_files(entries: Iterable[str], root: str | Path | None = None) -> tuple[str, ...]:
    """Repo-relative paths (sorted) of the files `entries` depend on.

    An entry is a dotted module name (`tasks.curate.task`, `model.train`) or a path under the
    repo root: a `.py` file or a folder (every module under it; `model` for the whole package,
    as the register step ships it) is taken with its imports, any other file (a word list) as
    it is. From each module, the project modules it imports, at top level or inside functions,
    are followed transitively, with the `__init__.py` of every package on the way.
    """
    return _code_files(_normalized(entries), _root(root))


def clear_code_cache() -> None:
    """Forget the cached closures and hashes (they are per process: a pipeline fingerprints
    the code as it found it when it first asked, which is also the code it has imported)."""
    _code_version.cache_clear()
    _code_files.cache_clear()
    _imports.cache_clear()


def _normalized(entries: Iterable[str]) -> tuple[str, ...]:
    if isinstance(entries, str):
        raise TypeError(f"code entries must be a list of names, got the string {entries!r}")
    given = list(entries)
    normalized = tuple(sorted({str(e).strip().rstrip("/") for e in given}))
    if not normalized or "" in normalized:
        raise ValueError(f"code entries must be non-empty names, got {given!r}")
    return normalized


def _root(root: str | Path | None) -> Path:
    return Path(root).resolve() if root is not None else REPO_PACKAGES


@functools.cache  # an lru_cache without a bound
def _code_version(entries: tuple[str, ...], root: Path) -> str:
    digest = hashlib.sha256()
    for relative in _code_files(entries, root):
        data = (root / relative).read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


@functools.cache  # an lru_cache without a bound
def _code_files(entries: tuple[str, ...], root: Path) -> tuple[str, ...]:
    files: set[Path] = set()
    pending: list[tuple[str, Path]] = []  # (module name, its file)
    for entry in entries:
        as_path = root / entry
        if as_path.is_dir():
            sources = sorted(as_path.rglob("*.py"))
            if not sources:
                raise FileNotFoundError(f"code_version: no Python source under {as_path}")
            pending += [(_module_name(source, root), source) for source in sources]
        elif as_path.is_file() and as_path.suffix == ".py":
            pending.append((_module_name(as_path, root), as_path))
        elif as_path.is_file():
            files.add(as_path)  # data the code reads (a word list): hashed, not parsed
        else:
            source = _module_file(entry, root)
            if source is None:
                raise FileNotFoundError(
                    f"code_version: {entry!r} is neither a module of {PROJECT_PACKAGES} nor "
                    f"a path under {root}"
                )
            pending.append((entry, source))
    while pending:
        name, source = pending.pop()
        if source in files:
            continue
        files.add(source)
        parent = name.rpartition(".")[0]
        wanted = _imports(source, name) | ({parent} if parent else set())
        for imported in sorted(wanted):
            found = _module_file(imported, root)
            if found is not None and found not in files:
                pending.append((imported, found))
    return tuple(sorted(path.relative_to(root).as_posix() for path in files))


def _module_name(source: Path, root: Path) -> str:
    return ".".join(source.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _module_file(name: str, root: Path) -> Path | None:
    """The file of the project module `name` (`a/b.py` or `a/b/__init__.py`), else None."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    base = root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_name(f"{parts[-1]}.py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache  # an lru_cache without a bound
def _imports(source: Path, name: str) -> frozenset[str]:
    """Dotted names `source` (the module `name`) may import: every `import a.b` and the base
    of every `from ... import`, plus `base.x` for each imported `x` (a submodule or not: the
    caller keeps only the names that are modules)."""
    tree = ast.parse(source.read_bytes(), filename=str(source))
    package = name if source.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level - 1 >= len(parts):
                    continue  # above the top-level package: not importable anyway
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base:
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(found)


def step_fingerprint(step: str, config: dict[str, Any], inputs: list[StepResult], code: str) -> str:
    """Stable 16-hex-digit hash of everything that determines a step's output."""
    payload = {
        "step": step,
        "config": config,
        "inputs": {i.step: i.fingerprint for i in inputs},
        "code": code,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_step(
    work_dir: str | Path,
    step: str,
    config: dict[str, Any],
    inputs: list[StepResult],
    code: Iterable[str],
    build: Callable[[Path], dict[str, Any]],
) -> StepResult:
    """Run `build(tmp_dir) -> stats` unless the fingerprinted output is already complete.

    `code` names the step's entry modules (see `code_files`): usually the calling module's
    `__name__`, plus any module or script the step runs in another process."""
    fingerprint = step_fingerprint(step, config, inputs, code_version(code))
    step_dir = Path(work_dir).resolve() / step
    final = step_dir / fingerprint
    if (final / "_SUCCESS").is_file():
        stats = json.loads((final / "stats.json").read_text())
        return StepResult(step, fingerprint, str(final), stats, skipped=True)

    tmp = step_dir / f".tmp-{fingerprint}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    started, t0 = _now(), time.monotonic()
    try:
        stats = build(tmp)
        stats["seconds"] = round(time.monotonic() - t0, 2)
        resolved = {"step": step, "config": config, "inputs": {i.step: i.path for i in inputs}}
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
        marker = {
            "step": step,
            "fingerprint": fingerprint,
            "inputs": {i.step: i.fingerprint for i in inputs},
            "started_at": started,
            "finished_at": _now(),
            "finished_ns": time.time_ns(),  # orders outputs finished within one clock tick
        }
        (tmp / "_SUCCESS").write_text(json.dumps(marker, indent=2))
        if final.exists():  # an earlier attempt that never got its _SUCCESS
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return StepResult(step, fingerprint, str(final), stats)
