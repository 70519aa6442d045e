"""The embedded pydoc site: rendered in an isolated interpreter, deterministic, served locally."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tasks.crawl.pydoc_render import allowed
from tasks.crawl.pydoc_site import generate_site, serve_site


def test_allowed_skips_side_effects_private_tests_and_main() -> None:
    assert allowed("json") and allowed("json.decoder") and allowed("email.mime")
    for name in ("antigravity", "this", "idlelib.pyshell", "tkinter", "turtle", "_thread"):
        assert not allowed(name), name
    for name in ("asyncio.__main__", "ctypes.test", "json._private", "unittest.test"):
        assert not allowed(name), name


def test_generate_site_is_isolated_and_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    # Were the output folder importable, this `aifc` would shadow the standard library's.
    first.mkdir()
    (first / "aifc.py").write_text('"""A shadow copy from the current folder."""\n')
    manifest = generate_site(4, first)
    generate_site(4, second)

    # Sorted names: 'antigravity' (denied) is passed over between 'aifc' and 'argparse'.
    assert manifest["rendered"] == ["abc", "aifc", "argparse", "array"]
    aifc_page = (first / "aifc.html").read_text(encoding="utf-8")
    assert "AIFF" in aifc_page and "shadow" not in aifc_page
    index = (first / "index.html").read_text(encoding="utf-8")
    for name in manifest["rendered"]:
        assert f'href="{name}.html"' in index
    pages = sorted(p.name for p in second.iterdir())
    assert pages == [
        "abc.html",
        "aifc.html",
        "argparse.html",
        "array.html",
        "index.html",
        "manifest.json",
    ]
    for page in pages:
        assert (first / page).read_bytes() == (second / page).read_bytes(), page
    assert json.loads((second / "manifest.json").read_text())["skipped"] == {}


def test_generate_site_rejects_zero_modules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="site_modules"):
        generate_site(0, tmp_path)


def test_serve_site_serves_until_the_block_ends(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>front page</p>")
    with serve_site(tmp_path) as front_page:
        assert front_page.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(front_page, timeout=5) as response:
            assert response.status == 200
            assert b"front page" in response.read()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(front_page, timeout=5)
