"""The embedded default website: the standard library's pydoc pages, served on 127.0.0.1.

`generate_site` renders the pages in a separate isolated interpreter (see `pydoc_render`);
`serve_site` serves a folder over HTTP on a free local port for the duration of a `with` block.
Together they give the crawler a real, linked, text-rich site on any machine with Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RENDER_SCRIPT = Path(__file__).with_name("pydoc_render.py")


def generate_site(modules: int, folder: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """Render `modules` stdlib modules plus `index.html` into `folder`; return the manifest.

    The child runs `python -I -S` with `folder` as its working directory and a minimal
    environment: only the standard library is importable (no site-packages, nothing from the
    caller's folder), and what it imports to document cannot leak into this process.
    """
    if modules < 1:
        raise ValueError(f"crawl.site_modules must be at least 1, got {modules}")
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.defpath, "TZ": "UTC", "LANG": "C.UTF-8"}
    try:
        subprocess.run(
            [sys.executable, "-I", "-S", str(RENDER_SCRIPT), str(modules)],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"rendering the pydoc site failed (exit {err.returncode}): {err.stderr[-2000:]}"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(
            f"rendering {modules} pydoc pages took over {timeout_s:.0f}s; lower crawl.site_modules"
        ) from err
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_site(folder: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `folder` over HTTP on a free port of `host`; yield the front page URL."""
    handler = partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="pydoc-site", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
