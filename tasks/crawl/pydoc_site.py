"""The embedded default website: the standard library's pydoc pages, served on 127.0.0.1.

`generate_site` renders the pages in a separate isolated interpreter (see `pydoc_render`);
`serve_site` serves a folder over HTTP on a free local port for the duration of a `with` block;
`write_feed` adds an RSS 2.0 feed of its first pages (`SITE_FEED`), so the news path runs too.
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
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from html import escape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RENDER_SCRIPT = Path(__file__).with_name("pydoc_render.py")
SITE_FEED = "feed.xml"  # the embedded site's RSS feed, beside index.html


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


def write_feed(folder: Path, front_page: str, modules: list[str], items: int) -> Path:
    """Write `folder/feed.xml`: an RSS 2.0 feed of the first `items` module pages of the site
    served at `front_page`, each with its page's modification time as `pubDate` and the
    module's name as a permanent guid (the same across ports and re-renders)."""
    entries = []
    for name in modules[:items]:
        page = folder / f"{name}.html"
        when = datetime.fromtimestamp(page.stat().st_mtime, UTC)
        entries.append(
            f"<item><title>{escape(name)}</title><link>{escape(front_page)}{escape(name)}.html"
            f'</link><guid isPermaLink="false">pydoc:{escape(name)}</guid>'
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
        )
    feed = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>pydoc</title><link>{escape(front_page)}</link>"
        f"<description>Python standard library documentation</description>{''.join(entries)}"
        "</channel></rss>\n"
    )
    path = folder / SITE_FEED
    partial_path = path.with_suffix(".xml.tmp")
    partial_path.write_text(feed, encoding="utf-8")
    partial_path.replace(path)
    return path
