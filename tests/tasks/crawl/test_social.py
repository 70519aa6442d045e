"""Social-media dumps (Reddit API / Pushshift NDJSON, Mastodon statuses, ActivityPub outbox)
as document records: real messages from tests/data/social/ (see its README)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import zstandard

from tasks.config import CrawlConfig
from tasks.crawl.other_sources import ingest_other_sources
from tasks.crawl.records import DOCUMENT_SCHEMA
from tasks.crawl.social import (
    author_hash,
    html_to_text,
    ingest_social,
    mask_mentions,
    reply_order,
    social_messages,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "social"
REDDIT, PUSHSHIFT = DATA / "reddit_comment_thread.json", DATA / "RC_sample.ndjson.zst"
CONTEXT, OUTBOX = DATA / "mastodon_context.json", DATA / "outbox_sample.json.gz"


def read(path: Path) -> tuple[list[dict], Counter]:
    """The messages of one file and its skip reasons."""
    items = list(social_messages(str(path), CrawlConfig()))
    skipped = Counter(item[1] for item in items if item[0] == "skip")
    return [item[4] for item in items if item[0] == "message"], skipped


def test_reddit_api_answer_with_nested_replies() -> None:
    messages, skipped = read(REDDIT)
    assert not skipped
    post, comment, reply = messages
    assert (post["id"], post["title"], post["parent_id"]) == ("t3_3hahrw", "Ba Dum Tsss", None)
    assert post["url"] == "https://www.reddit.com/r/funny/comments/3hahrw/ba_dum_tsss/"
    assert (comment["id"], comment["parent_id"], comment["text"]) == (
        "t1_cu5uyz1",
        "t1_cu5unth",
        "TIL",
    )
    assert reply["parent_id"] == "t1_cu5uyz1" and reply["text"].startswith("Reddit has been")
    assert {m["thread_id"] for m in messages} == {"t3_3hahrw"}
    assert [m["created_at"] for m in messages] == [
        "2015-08-17T07:44:40Z",
        "2015-08-17T13:54:54Z",
        "2015-08-17T13:57:31Z",
    ]


def test_pushshift_ndjson_plain_gz_and_zst_read_the_same(tmp_path: Path) -> None:
    lines = zstandard.ZstdDecompressor().stream_reader(PUSHSHIFT.open("rb")).read()
    (tmp_path / "RC.ndjson").write_bytes(lines)
    (tmp_path / "RC.gz").write_bytes(gzip.compress(lines))  # no telling suffix: from content
    messages, skipped = read(PUSHSHIFT)
    assert not skipped and len(messages) == 8
    assert Counter(m["id"][:3] for m in messages) == {"t1_": 6, "t3_": 2}
    first = messages[0]
    assert (first["id"], first["parent_id"], first["thread_id"]) == (
        "t1_d7ltv00",
        "t1_d7lrj2i",
        "t3_52ntoz",
    )
    assert first["created_at"] == "2016-09-14T01:17:20Z"
    for copy in ("RC.ndjson", "RC.gz"):
        assert read(tmp_path / copy)[0] == [{**m, "file": copy} for m in messages]


def test_mastodon_context_html_becomes_text_and_threads_follow_replies() -> None:
    messages, skipped = read(CONTEXT)
    assert not skipped
    assert [(m["id"], m["parent_id"], m["thread_id"]) for m in messages] == [
        ("6884492", None, "6884492"),
        ("6884692", "6884492", "6884492"),
        ("6886129", "6886100", "6886100"),  # its parent is not in the file
    ]
    assert messages[1]["text"] == "@test\n引っ越してドトールない街に移ったのでやけに美味しそう"
    assert messages[0]["created_at"] == "2017-05-03T02:23:54Z"


def test_activitypub_outbox_skips_announces_and_keeps_paragraphs() -> None:
    messages, skipped = read(OUTBOX)
    assert len(messages) == 15 and skipped == {"activitypub_announce_no_content": 5}
    thread = [
        m for m in messages if m["thread_id"].endswith("objectId=31263944:objectType=Conversation")
    ]
    assert len(thread) == 5 and thread[0]["parent_id"] is None
    assert [m["parent_id"] for m in thread[1:]] == [m["id"] for m in thread[:-1]]
    assert thread[0]["text"].endswith(
        'stupid!"\n\nShe was 4 years old when Apple removed the headphone jack.'
    )


def test_html_mentions_and_author_hash() -> None:
    assert html_to_text("<p>one<br>two</p><p>three <b>four</b></p>") == "one\ntwo\n\nthree four"
    assert mask_mentions(
        "@alexl @deadsuperhero@mamot.fr hi, mail a@b.org, ask /u/spez or u/x_y1"
    ) == ("@user @user hi, mail a@b.org, ask /u/user or u/user")
    salted = author_hash("reddit", "OmegaFemale", "s1")
    assert salted and salted != author_hash("reddit", "OmegaFemale", "s2")
    assert author_hash("reddit", "[deleted]", "s1") is None


def test_reply_order_parent_before_child_then_time() -> None:
    def m(id_: str, parent: str | None, at: str) -> dict:
        return {"id": id_, "parent_id": parent, "created_at": at}

    found = reply_order(
        [
            m("c2", "a", "3"),
            m("b", None, "2"),
            m("c1", "a", "4"),
            m("a", None, "1"),
            m("d", "c1", "0"),
        ]
    )
    assert [x["id"] for x in found] == ["a", "c2", "c1", "d", "b"]


def test_bad_input_is_counted_and_the_rest_is_read(tmp_path: Path) -> None:
    cut = tmp_path / "RC_cut.zst"
    cut.write_bytes(PUSHSHIFT.read_bytes()[:-200])
    messages, skipped = read(cut)
    assert skipped["file_truncated_zst"] == 1 and len(messages) < 8
    lines = tmp_path / "RC_mixed.ndjson"
    good = json.dumps({"id": "abc", "body": "a real line", "link_id": "t3_x", "parent_id": "t3_x"})
    lines.write_text(f'{good}\n[1, 2]\n"text"\n{{not json\n{good.replace("abc", "abd")}\n')
    messages, skipped = read(lines)
    assert [m["id"] for m in messages] == ["t1_abc", "t1_abd"]
    assert skipped == {"line_not_object": 2, "line_not_json": 1}
    outbox = tmp_path / "outbox.json"
    empty = {"type": "Create", "object": {"id": "https://x/1", "type": "Note", "content": ""}}
    outbox.write_text(
        json.dumps({"type": "OrderedCollection", "orderedItems": [empty, {"type": "Create"}]})
    )
    assert read(outbox) == ([], Counter({"activitypub_no_content": 2}))
    (tmp_path / "page.html").write_text("<html>not a dump</html>")
    assert read(tmp_path / "page.html") == ([], Counter({"file_not_json": 1}))


def test_ingest_messages_and_threads(spark, tmp_path: Path) -> None:
    (tmp_path / "bad.zst").write_bytes(PUSHSHIFT.read_bytes()[:-200])
    (tmp_path / "again.json").write_bytes(REDDIT.read_bytes())  # the same 3 messages: kept once
    paths = [str(DATA / "*.json*"), str(DATA / "*.zst"), str(tmp_path / "*"), str(REDDIT)]
    config = CrawlConfig(social_paths=paths, social_salt="test-salt")
    counts = ingest_other_sources(spark, config, tmp_path / "crawl")["social"]
    assert counts == {
        "files": 6,
        "messages": 29,
        "duplicate_messages": 3,
        "documents": 29,
        "skipped_activitypub_announce_no_content": 5,
        "skipped_file_truncated_zst": 1,
    }
    rows = spark.read.parquet(str(tmp_path / "crawl" / "social")).collect()
    assert spark.read.parquet(str(tmp_path / "crawl" / "social")).columns == DOCUMENT_SCHEMA.names
    assert {r["source"] for r in rows} == {"social"}
    assert Counter(r["meta"]["platform"] for r in rows) == {
        "reddit": 11,
        "mastodon": 3,
        "activitypub": 15,
    }
    assert all(r["meta"]["created_at"].endswith("Z") for r in rows)
    reply = next(r for r in rows if r["meta"]["message_id"] == "6884692")
    assert reply["text"].startswith("@user\n") and reply["meta"]["parent_id"] == "6884492"
    assert reply["meta"]["author_hash"] == author_hash("mastodon", "test2", "test-salt")
    assert not any("OmegaFemale" in str(r.asDict()) for r in rows)

    config = CrawlConfig(social_paths=[str(REDDIT), str(OUTBOX)], social_assemble="thread")
    counts = ingest_social(spark, config, tmp_path / "threads")
    assert (counts["messages"], counts["documents"]) == (18, 11)
    threads = spark.read.parquet(str(tmp_path / "threads")).collect()
    reddit = next(r for r in threads if r["meta"]["platform"] == "reddit")
    assert reddit["title"] == "Ba Dum Tsss" and reddit["meta"]["messages"] == "3"
    assert reddit["text"].startswith("Ba Dum Tsss\n\nTIL\n\nReddit has been helping me")
    jack = next(r for r in threads if r["meta"]["messages"] == "5")
    assert jack["text"].startswith("The 11-year-old has lost her AirPods.")
    assert jack["text"].endswith("allows me to have a decent phone conversation.")


def test_shared_corpus_reddit_cassette_and_outbox(
    spark, shared_corpus: Path, tmp_path: Path
) -> None:
    social = shared_corpus / "social"
    cassette = social / "reddit" / "TestCommentForest.test_replace__all.json.gz"
    config = CrawlConfig(
        social_paths=[str(cassette), str(social / "activitypub" / "outbox.json.gz")]
    )
    counts = ingest_social(spark, config, tmp_path / "out")
    # README 6a: 1 submission + 541 distinct comments; 6c: 1,260 notes + 326 Announces.
    # 6 distinct deleted comments (one seen twice); 5 notes are attachments without text.
    assert (counts["skipped_deleted"], counts["skipped_activitypub_no_content"]) == (7, 5)
    assert counts["messages"] == counts["documents"] == (1 + 541 - 6) + (1260 - 5)
    assert counts["skipped_activitypub_announce_no_content"] == 326
