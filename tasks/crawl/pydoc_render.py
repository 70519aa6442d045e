"""Render standard-library modules to linked static HTML pages with pydoc (stdlib only).

Run as a script by `pydoc_site.generate_site`, in a separate isolated interpreter
(`python -I pydoc_render.py <count>`, cwd = the output folder): the imports it makes to
document modules then cannot disturb the caller, and nothing in the caller's current folder is
importable. It writes `<name>.html` per module, `index.html` linking them all, and
`manifest.json` ({"rendered": [...], "skipped": {name: reason}}).

Candidates are `sys.stdlib_module_names` (top-level modules), then their submodules one
package level at a time, each level in sorted order, so the same count gives the same site.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import io
import json
import pkgutil
import pydoc
import re
import sys
import warnings
from pathlib import Path

# Modules whose import does something beyond defining names, or that need a GUI or terminal.
DENY = frozenset(
    {
        "__main__",  # the running script itself
        "antigravity",  # opens a web browser
        "this",  # prints the Zen of Python
        "idlelib",  # the IDLE GUI
        "turtledemo",  # GUI demos
        "tkinter",  # needs Tk and a display
        "turtle",  # Tk graphics
        "readline",  # initialises the terminal
        "rlcompleter",  # installs a readline completer on import
        "test",  # CPython's regression suite: huge, some modules act on import
    }
)
# Submodule name parts never rendered: test suites and `python -m` entry points.
SKIPPED_PARTS = frozenset({"__main__", "test", "tests", "idle_test"})
# Memory addresses in reprs (`<object at 0x7f...>`, `<PyDLL ..., handle 7f...>`; spaces may be
# &nbsp;) change per process: pin them so the same config gives the same pages.
ADDRESS = re.compile(r"((?:at(?:&nbsp;|\s)0x)|(?:handle(?:&nbsp;|\s)))[0-9a-fA-F]+")


def allowed(name: str) -> bool:
    """Public, not denied, not a test suite or `__main__` submodule."""
    parts = name.split(".")
    if parts[0] in DENY or any(p.startswith("_") for p in parts):
        return False
    return not any(p in SKIPPED_PARTS for p in parts[1:])


def import_quietly(name: str) -> object:
    """Import `name` with its warnings and any stray output swallowed."""
    sink = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def render(module: object, name: str) -> str:
    """The pydoc HTML page of `module`, with object addresses pinned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = pydoc.html.page(pydoc.describe(module), pydoc.html.document(module, name))
    return ADDRESS.sub(r"\g<1>0", page)


def submodules(package: object) -> list[str]:
    """Direct submodule names of `package` (empty for a plain module)."""
    path = getattr(package, "__path__", None)
    if path is None:
        return []
    prefix = package.__name__ + "."
    return sorted(prefix + info.name for info in pkgutil.iter_modules(path))


def synopsis(module: object) -> str:
    """First line of the module's docstring, or ''."""
    doc = pydoc.getdoc(module)
    return doc.strip().splitlines()[0] if doc.strip() else ""


def index_page(rendered: list[tuple[str, str]]) -> str:
    """The front page: one link per rendered module with its synopsis."""
    items = "\n".join(
        f'<li><a href="{name}.html">{name}</a> {html.escape(line)}</li>' for name, line in rendered
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Python standard library</title>\n</head><body>\n"
        "<h1>Python standard library</h1>\n"
        f"<p>Documentation of {len(rendered)} modules, rendered by pydoc.</p>\n"
        f"<ul>\n{items}\n</ul>\n</body></html>"
    )


def render_site(count: int, out: Path) -> dict[str, object]:
    """Render up to `count` modules into `out`; return the manifest."""
    rendered: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    level = sorted(n for n in sys.stdlib_module_names if allowed(n))
    while level and len(rendered) < count:
        next_level: list[str] = []
        for name in level:
            if len(rendered) >= count:
                break
            try:
                module = import_quietly(name)
                page = render(module, name)
            except BaseException as err:  # any failure (even SystemExit) skips the module
                skipped[name] = f"{type(err).__name__}: {err}"[:200]
                continue
            (out / f"{name}.html").write_text(page, encoding="utf-8")
            rendered.append((name, synopsis(module)))
            next_level.extend(n for n in submodules(module) if allowed(n))
        level = sorted(set(next_level))
    (out / "index.html").write_text(index_page(rendered), encoding="utf-8")
    manifest = {"rendered": [name for name, _ in rendered], "skipped": skipped}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


if __name__ == "__main__":
    render_site(int(sys.argv[1]), Path.cwd())
