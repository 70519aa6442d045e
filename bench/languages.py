"""Many languages: the real extract (main text + py3langid) and the default curate filters on the
UDHR in 26 languages (shared/corpus/multilingual, a parallel text: same content in each).

Per language: the expected ISO 639-1 code (the page's `<html lang>`), the identified one and
its probability, paragraphs (extracted lines) and words (`split_words`), whether the whole page
is kept, and the kept rate of its parts (runs of `PART_LINES` lines, as shorter pages would be)
with the rule that dropped each dropped part. Prints a table, writes bench/results/languages.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402
import re  # noqa: E402
from collections import Counter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import CORPUS  # noqa: E402
from tasks.config import CurateConfig, ExtractConfig  # noqa: E402
from tasks.curate.filters.base import split_words  # noqa: E402
from tasks.curate.filters.build import build_filters  # noqa: E402
from tasks.curate.runner import filter_document  # noqa: E402
from tasks.extract.main_text import identify_language, main_text  # noqa: E402

PART_LINES = 10
HTML_LANG = re.compile(r'<html[^>]*\blang="([a-z]+)')


def language_row(page: Path, filters: list) -> dict:
    """The table row of one UDHR page."""
    html = page.read_text(encoding="utf-8")
    url = f"https://udhr.example/{page.stem}"
    text = main_text(html, url, ExtractConfig()).text
    lang, score = identify_language(text)
    lines = [line for line in text.split("\n") if line.strip()]

    def verdict(body: str) -> tuple[str, str] | None:
        doc = {"url": url, "text": body, "lang": lang, "lang_score": score, "counts": {}}
        return filter_document(filters, doc)

    whole = verdict(text)
    parts = ["\n".join(lines[i : i + PART_LINES]) for i in range(0, len(lines), PART_LINES)]
    drops = Counter(f"{stage}:{reason}" for stage, reason in filter(None, map(verdict, parts)))
    return {
        "file": page.name,
        "expected": HTML_LANG.search(html).group(1),
        "lang": lang,
        "lang_correct": lang == HTML_LANG.search(html).group(1),
        "score": round(score, 3),
        "paragraphs": len(lines),
        "words": len(split_words(text)),
        "page_kept": whole is None,
        "page_drop": ":".join(whole) if whole else "",
        "parts": len(parts),
        "parts_kept_rate": round(1 - sum(drops.values()) / len(parts), 3),
        "part_drops": dict(drops),
    }


def main() -> None:
    pages = sorted((CORPUS / "multilingual").glob("*.html"))
    if not pages:
        sys.exit(f"no UDHR pages under {CORPUS / 'multilingual'}: set LMFORGE_CORPUS")
    filters = build_filters(CurateConfig())
    rows = [language_row(page, filters) for page in pages]
    print(f"{'file':20} {'exp':4} {'id':4} {'score':>6} {'paras':>5} {'words':>6} page  parts "
          "kept  part drops")  # fmt: skip
    for r in rows:
        print(
            f"{r['file']:20} {r['expected']:4} {r['lang']:4} {r['score']:6.3f} {r['paragraphs']:5d}"
            f" {r['words']:6d} {'kept' if r['page_kept'] else 'DROP'}  {r['parts']:5d}"
            f" {r['parts_kept_rate']:5.2f} {r['part_drops']}"
        )
    summary = {
        "languages": len(rows),
        "lang_id_correct": sum(r["lang_correct"] for r in rows),
        "pages_kept": sum(r["page_kept"] for r in rows),
        "parts": sum(r["parts"] for r in rows),
        "parts_kept": sum(r["parts"] * r["parts_kept_rate"] for r in rows),
        "part_drops": sum((Counter(r["part_drops"]) for r in rows), Counter()),
    }
    summary["parts_kept"] = round(summary["parts_kept"])
    print(json.dumps(summary))
    out = ROOT / "bench" / "results" / "languages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"part_lines": PART_LINES, "summary": summary, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
