"""Message-level cleaning on real messages (tests/data/social, read by the real social readers,
through extract and curate) with planted reposts, near copies, links and a bot."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tasks.config import CrawlConfig, CurateConfig, ExtractConfig
from tasks.crawl.social import ingest_social, mask_mentions
from tasks.curate.curate import curate_documents
from tasks.curate.filters.build import build_filters
from tasks.curate.minhash import band_keys, signatures
from tasks.curate.runner import filter_document
from tasks.curate.social_rules import SocialConfig, link_verdict, strip_links
from tasks.extract.extract import extract_documents
from tasks.extract.main_text import identify_language

DATA = Path(__file__).resolve().parents[2] / "data" / "social"
REAL = ["reddit_comment_thread.json", "RC_sample.ndjson.zst", "mastodon_context.json"]
REAL += ["outbox_sample.json.gz"]
ORIGINAL = "Reddit has been going downhill ever since they changed the front page algorithm."
NEAR = "Reddit has been going downhil ever since they changed the frontpage algorithm!"
BOT = "Daily reminder: the megathread is open, {} comments so far, join in at {}:00"
STRIPPED = (
    "Worth reading on cache design, with numbers from real workloads: https://example.org/caches"
    " and [the follow-up](https://example.org/more)"
)


def comment(id_: str, author: str, body: str, at: int) -> str:
    """A Pushshift-style comment line (the `data` object of a t1), as RC_* dumps hold them."""
    data = {"id": id_, "name": f"t1_{id_}", "author": author, "body": body, "created_utc": at}
    return json.dumps({**data, "link_id": "t3_plant", "parent_id": "t3_plant"})


PLANTED = [
    comment("p1", "original_poster", ORIGINAL, 1_600_000_000),
    comment("p2", "reposter", ORIGINAL, 1_600_000_500),  # the same text: a repost
    comment("p3", "copyist", NEAR, 1_600_000_900),  # a few characters changed
    comment("p4", "linker", "https://example.com/2020/09/a-page-about-something", 1_600_001_000),
    comment("p5", "reader", STRIPPED, 1_600_002_000),
    *(comment(f"b{i}", "bot", BOT.format(10 * i, 9 + i), 1_600_003_000 + i) for i in range(3)),
]


@pytest.fixture(scope="module")
def curated(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("social_clean")
    for name in REAL:
        shutil.copy(DATA / name, root / name)
    (root / "RC_planted.ndjson").write_text("\n".join(PLANTED) + "\n")
    crawl = root / "crawl"
    crawl_config = CrawlConfig(social_paths=[str(root / "*.*")])
    ingested = ingest_social(spark, crawl_config, crawl / "social")
    extracted = extract_documents(spark, crawl, ExtractConfig(), root / "extract")
    stats = curate_documents(spark, str(root / "extract" / "docs"), CurateConfig(), root / "out")
    kept = spark.read.parquet(str(root / "out" / "docs")).collect()
    dropped = spark.read.parquet(str(root / "out" / "dropped")).collect()
    return ingested, extracted, stats, kept, dropped


def by_message(rows) -> dict[str, object]:
    return {row["meta"]["message_id"]: row for row in rows}


def test_short_messages_reach_curate(curated):
    ingested, extracted, _, _, _ = curated
    assert ingested["messages"] == 29 + len(PLANTED)
    # "TIL" (3 characters) is a real comment: extract.min_chars (50) would have dropped it
    assert extracted["kept"] == ingested["messages"] and extracted["input_social"] == 37


def test_each_planted_message_is_dropped_with_its_reason(curated):
    _, _, stats, kept, dropped = curated
    drops = {m: (r["drop_reason"], r["drop_stage"]) for m, r in by_message(dropped).items()}
    assert drops["t1_p2"] == ("social_duplicate", "social")
    assert drops["t1_p3"] == ("social_near_duplicate", "social")
    assert drops["t1_p4"] == ("social_mostly_link", "social")
    assert drops["t1_b1"] == drops["t1_b2"] == ("social_bot_repeat", "social")
    messages = by_message(kept)
    assert {"t1_p1", "t1_p5", "t1_b0"} <= set(messages)  # the earliest of each is kept
    assert (
        messages["t1_p5"]["text"]
        == "Worth reading on cache design, with numbers from real workloads: and the follow-up"
    )
    assert stats["dropped_social_duplicate"] == 1 and stats["dropped_social_bot_repeat"] == 2
    assert stats["dropped_social_near_duplicate"] == 1
    order = stats["funnel_order"]
    assert order[order.index("after_pii") + 1 : order.index("after_pii") + 3] == [
        "after_social",
        "after_paragraph_dedup",
    ]
    assert stats["funnel"]["after_pii"] - stats["funnel"]["after_social"] == 6  # 5 planted + 1


def test_no_false_drops_on_the_real_messages(curated):
    _, _, stats, kept, dropped = curated
    planted = {f"t1_{p}" for p in ("p1", "p2", "p3", "p4", "p5", "b0", "b1", "b2")}
    real_kept = set(by_message(kept)) - planted
    real_dropped = {m: r for m, r in by_message(dropped).items() if m not in planted}
    # the one real drop: an outbox note that is a bare link (a URL and nothing else)
    (note,) = real_dropped.values()
    assert note["drop_reason"] == "social_mostly_link" and note["text"].startswith("https://")
    assert len(real_kept) == 28
    assert stats["input"] == stats["kept"] + len(dropped) == 37
    assert stats["social_messages"] == 37 and stats["social_messages_links_stripped"] >= 1


def test_word_minhash_misses_the_short_near_copy_and_char_shingles_catch_it():
    cfg = SocialConfig()
    words = signatures([ORIGINAL, NEAR], 5, 14 * 8, seed=1)
    chars = signatures([ORIGINAL, NEAR], cfg.char_ngram, cfg.bands * cfg.rows, cfg.seed, "char")
    word_keys, char_keys = band_keys(words, 14, 8), band_keys(chars, cfg.bands, cfg.rows)
    assert not (word_keys[0] == word_keys[1]).any()  # the project's word 5-gram LSH: no band
    assert (char_keys[0] == char_keys[1]).any()
    assert (
        np.mean(chars[0] == chars[1]) >= cfg.min_estimated_jaccard > np.mean(words[0] == words[1])
    )


def test_link_modes():
    text = "Read the whole write-up at https://example.org/a now"
    assert strip_links(STRIPPED) == (
        "Worth reading on cache design, with numbers from real workloads: and the follow-up",
        2,
    )
    assert link_verdict(text, SocialConfig(links="keep")) == (text, None, 0)
    assert link_verdict(text, SocialConfig(links="drop"))[1] == "social_has_link"
    assert link_verdict(text, SocialConfig(links="strip")) == (
        "Read the whole write-up at now",
        None,
        1,
    )
    only_link = SocialConfig(max_link_share=1.0)  # a message left without a word still goes
    assert link_verdict("https://example.org/a", only_link)[1] == "social_mostly_link"


def test_toxicity_on_the_labelled_tweets_as_social_messages(shared_corpus):
    """The filters that judge messages (curate.social.filters) on the Davidson et al. tweets
    with their @handles masked as the social readers mask them; toxic = classes 0 and 1."""
    path = shared_corpus / "toxicity" / "labeled_data.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::4]  # 3,098 tweets keep the test short
    config = CurateConfig()
    rules = [f for f in build_filters(config) if f.name in config.social.filters]
    predicted = []
    for row in rows:
        text = mask_mentions(row["tweet"])
        lang, score = identify_language(text)
        doc = {"url": None, "text": text, "lang": lang, "lang_score": score, "counts": {}}
        predicted.append((filter_document(rules, doc) or ("",))[0] == "toxicity")
    truth = [r["class"] in ("0", "1") for r in rows]
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    precision, recall = tp / (tp + fp), tp / sum(truth)
    print(
        f"toxicity on {len(rows)} tweets as messages: precision {precision:.4f} recall {recall:.4f}"
    )
    # measured: these 3,098 0.9926 / 0.8888; all 12,392 0.9911 / 0.8901 (unmasked 0.9910 / 0.9006:
    # handles such as @...bitches... no longer count once masked)
    assert precision >= 0.985 and recall >= 0.88
