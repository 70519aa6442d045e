"""Filters that keep clean text: every curate filter run over text that should be kept.

- the extraction benchmark's gold article bodies (shared/corpus/extraction/ground-truth.json,
  92 real news and blog pages): every drop there is a false positive;
- passages of the Gutenberg books (shared/corpus/books: ~300-word runs of whole paragraphs,
  the licence header and footer cut off): every drop is a false positive;
- the labelled tweets (shared/corpus/toxicity, Davidson et al. 2017: toxic = hate or
  offensive, clean = neither): the toxicity filter's precision and recall.
Each text gets its language from the extract step's identifier (py3langid), as in the
pipeline. Each filter runs alone (its own drop rate, by reason), then the default chain runs
as the curate step does (tasks/curate/runner.py: in order, first drop wins). PII never drops;
its replacements are counted and listed with their context. With `--pydoc N` the embedded
site's pages (the demo's crawl, rendered from this Python's pydoc) are a fourth set: API
reference pages, where every drop is not a false positive, but the bad-words and PII counts
there are the ones the issue reported (`xxx`, version strings).
Targets: the whole chain drops <= 5 % of gold bodies and <= 2 % of book passages; toxicity
recall >= 0.90 at precision >= 0.98. Prints a table and writes bench/results/filters.json.

    python bench/filters.py [--pydoc 300]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds tokenize.py, which would shadow the standard library's tokenize module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import csv  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from collections import Counter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import CORPUS  # noqa: E402
from tasks.config import CurateConfig  # noqa: E402
from tasks.curate.filters.build import build_filters  # noqa: E402
from tasks.curate.filters.pii import EMAIL, IPV4, PHONE, _public_ip  # noqa: E402
from tasks.curate.runner import filter_document  # noqa: E402
from tasks.extract.main_text import identify_language  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "filters.json"
BOOKS = ("pg1342.txt", "pg1661.txt", "11-0.txt")
PASSAGE_WORDS = 300


def gold_bodies() -> list[str]:
    truth = json.loads((CORPUS / "extraction" / "ground-truth.json").read_text("utf-8"))
    return [item["articleBody"] for _, item in sorted(truth.items())]


def gutenberg_body(text: str) -> str:
    """The book between Project Gutenberg's START and END markers."""
    start = re.search(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG[^\n]*\n", text)
    end = re.search(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", text)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def book_passages() -> list[str]:
    """Runs of whole paragraphs of about PASSAGE_WORDS words (line breaks kept)."""
    passages: list[str] = []
    for name in BOOKS:
        raw = (CORPUS / "books" / name).read_text("utf-8-sig").replace("\r\n", "\n")
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", gutenberg_body(raw)) if p.strip()]
        chunk: list[str] = []
        words = 0
        for paragraph in paragraphs:
            chunk.append(paragraph)
            words += len(paragraph.split())
            if words >= PASSAGE_WORDS:
                passages.append("\n\n".join(chunk))
                chunk, words = [], 0
    return passages


def tweets() -> list[tuple[str, bool]]:
    """(text, toxic) of the labelled tweets: toxic = class 0 (hate) or 1 (offensive)."""
    with gzip.open(CORPUS / "toxicity" / "labeled_data.csv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    return [(row["tweet"], row["class"] in ("0", "1")) for row in rows]


def pydoc_pages(modules: int) -> list[str]:
    """The extracted text of the embedded site's pages (what the demo crawls)."""
    import tempfile

    from tasks.config import ExtractConfig
    from tasks.crawl.pydoc_site import generate_site
    from tasks.extract.main_text import main_text

    with tempfile.TemporaryDirectory() as folder:
        generate_site(modules, Path(folder))
        pages = sorted(Path(folder).glob("*.html"))
        texts = [main_text(p.read_text("utf-8"), p.name, ExtractConfig()).text for p in pages]
    return [t for t in texts if t]


def pii_hits(texts: list[str]) -> dict[str, list[str]]:
    """Each replacement the PII filter would make, with 30 characters of context."""
    found: dict[str, list[str]] = {"email": [], "ip": [], "phone": []}
    for text in texts:
        for kind, pattern in (("email", EMAIL), ("ip", IPV4), ("phone", PHONE)):
            for m in pattern.finditer(text):
                if kind != "ip" or _public_ip(m):
                    context = text[max(0, m.start() - 30) : m.end() + 30]
                    found[kind].append(" ".join(context.split()))
    return found


def run_chain(filters, texts: list[str], langs: list[str]) -> tuple[Counter, Counter, list[dict]]:
    """Drops by reason and PII replacements by kind over `texts`, filters applied in order."""
    reasons: Counter = Counter()
    counts: Counter = Counter()
    examples: list[dict] = []
    for i, (text, (lang, score)) in enumerate(zip(texts, langs, strict=True)):
        doc = {"url": f"bench://{i}", "text": text, "lang": lang, "lang_score": score}
        doc["counts"] = {}
        drop = filter_document(filters, doc)
        counts.update(doc["counts"])
        if drop:
            reasons[drop[1]] += 1
            if len(examples) < 40:
                examples.append({"reason": drop[1], "lang": lang, "text": text[:300]})
    return reasons, counts, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pydoc", type=int, default=0, help="also the embedded site's pages")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"skipped: no corpus at {CORPUS} (set LMFORGE_CORPUS)")
        return
    config = CurateConfig()
    chain = build_filters(config)
    sets = {"gold_bodies": gold_bodies(), "book_passages": book_passages()}
    if args.pydoc:
        sets["pydoc_pages"] = pydoc_pages(args.pydoc)
    report: dict = {"filters": list(config.filters), "sets": {}}
    print(f"{'set':<14} {'filter':<18} {'docs':>6} {'dropped':>8} {'rate':>7}  reasons")
    for set_name, texts in sets.items():
        langs = [identify_language(t) for t in texts]
        per_filter = {}
        for rule in chain:
            reasons, counts, examples = run_chain([rule], texts, langs)
            dropped = sum(reasons.values())
            per_filter[rule.name] = {
                "dropped": dropped,
                "rate": dropped / len(texts),
                "reasons": dict(reasons),
                "counters": dict(counts),
                "examples": examples[:5],
            }
            extra = ", ".join(f"{k} {v}" for k, v in {**reasons, **counts}.items())
            print(
                f"{set_name:<14} {rule.name:<18} {len(texts):>6} {dropped:>8} "
                f"{dropped / len(texts):>7.1%}  {extra}"
            )
        reasons, counts, examples = run_chain(chain, texts, langs)
        dropped = sum(reasons.values())
        print(
            f"{set_name:<14} {'ALL (in order)':<18} {len(texts):>6} {dropped:>8} "
            f"{dropped / len(texts):>7.1%}  {dict(reasons)}"
        )
        if set_name == "pydoc_pages":  # and the demo's own chain (configs/demo.toml)
            from tasks.config import load_config

            demo = load_config(ROOT / "configs" / "demo.toml", []).curate
            d_reasons, _, _ = run_chain(build_filters(demo), texts, langs)
            d_dropped = sum(d_reasons.values())
            print(
                f"{set_name:<14} {'demo.toml chain':<18} {len(texts):>6} {d_dropped:>8} "
                f"{d_dropped / len(texts):>7.1%}  {dict(d_reasons)}"
            )
            report["demo_chain"] = {
                "filters": demo.filters,
                "dropped": d_dropped,
                "reasons": dict(d_reasons),
            }
        pii = pii_hits(texts)
        report["sets"][set_name] = {
            "documents": len(texts),
            "langs": dict(Counter(lang for lang, _ in langs)),
            "pii_replacements": pii,
            "per_filter": per_filter,
            "all": {
                "dropped": dropped,
                "rate": dropped / len(texts),
                "reasons": dict(reasons),
                "counters": dict(counts),
                "examples": examples,
            },
        }
    labelled = tweets()
    toxicity = next(f for f in chain if f.name == "toxicity")
    tp = fp = fn = tn = 0
    for text, toxic in labelled:
        lang, score = identify_language(text)
        doc = {"url": "", "text": text, "lang": lang, "lang_score": score, "counts": {}}
        drop = filter_document([toxicity], doc)
        if drop and toxic:
            tp += 1
        elif drop:
            fp += 1
        elif toxic:
            fn += 1
        else:
            tn += 1
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    print(
        f"toxicity on {len(labelled)} tweets: precision {precision:.3f} recall {recall:.3f} "
        f"(tp {tp} fp {fp} fn {fn} tn {tn})"
    )
    report["toxicity_tweets"] = {
        "tweets": len(labelled),
        "precision": precision,
        "recall": recall,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
