"""Small file facts shared by the steps and the ranks: a file's sha256, a folder's hashes, and
writing a file atomically (a reader sees the old file or the whole new one, never half)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path, exclude: Collection[str] = ()) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`, but those named in `exclude`."""
    return {
        str(path.relative_to(folder)): sha256_file(path)
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file())
        if path.name not in exclude
    }


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temp.write_text(text)
    temp.replace(path)
