"""Social-media message dumps in the platforms' own formats, as document records.

The format is read from the content, not the file name: zstd and gzip are undone by their
magic bytes; a file whose first line is a whole message object is NDJSON (Pushshift-style
`RC_*`/`RS_*` dumps, one Reddit comment or submission per line); any other file is one JSON
document: a Reddit API answer (a `Listing`, `t1` comment, `t3` submission, a list of Listings
as `/comments/<id>` returns, a `morechildren` answer, or a recorded PRAW/vcrpy cassette whose
response bodies hold those), Mastodon API statuses (an array, or a `{ancestors, descendants}`
context) or an ActivityPub outbox (`OrderedCollection` of `Create` activities wrapping Notes).
HTML content (Mastodon, ActivityPub) becomes text with its paragraph breaks.

Privacy: an author is kept only as a salted hash (`meta.author_hash`, salt `crawl.social_salt`)
and @mentions (and Reddit's u/name) in the text become `@user` (`u/user`).

Each file is one Spark task. A message that cannot be used (a line that is not a JSON object,
an activity without content, a deleted comment, ...) is skipped with a reason and counted; a
file that cannot be read (truncated .zst, not JSON) is counted as `file_<reason>`, and the rest
of the run goes on. `crawl.social_assemble = "thread"` joins a thread's messages in reply
order (parent before child, siblings by time) into one document.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import lxml.html
import zstandard
from pyspark.sql import SparkSession

from tasks.config import CrawlConfig
from tasks.crawl.records import DOCUMENT_SCHEMA, document_id
from tasks.crawl.sources import expand_sources, open_source, source_name

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# Block elements whose end is a paragraph break; <br> is a line break.
BLOCKS = {"p", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol"}
MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_][\w.-]*(?:@[\w-]+(?:\.[\w-]+)+)?")
REDDIT_USER = re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]{3,20}\b")
DELETED = {"[deleted]", "[removed]"}


class BadFile(ValueError):
    """A file that cannot be read at all; `reason` is its counted kind."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decompressed(stream: BinaryIO) -> Iterator[bytes]:
    """The bytes of a seekable `stream`, zstd (all frames) or gzip undone by their magic
    bytes; a stream that ends inside a frame raises BadFile('truncated_zst'/'truncated_gz')."""
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=stream) as unzipped:
            try:
                while chunk := unzipped.read(CHUNK):
                    yield chunk
            except (EOFError, gzip.BadGzipFile) as err:
                raise BadFile("truncated_gz", f"the gzip stream ends early: {err}") from err
        return
    if not head.startswith(ZSTD_MAGIC):
        while chunk := stream.read(CHUNK):
            yield chunk
        return
    decoder = zstandard.ZstdDecompressor().decompressobj()
    while data := stream.read(CHUNK):
        try:
            yield decoder.decompress(data)
            while decoder.eof and decoder.unused_data:  # the next frame
                data, decoder = decoder.unused_data, zstandard.ZstdDecompressor().decompressobj()
                yield decoder.decompress(data)
        except zstandard.ZstdError as err:
            raise BadFile("corrupt_zst", f"the zstd stream is corrupt: {err}") from err
    if not decoder.eof:
        raise BadFile(
            "truncated_zst", "the zstd stream ends inside a frame (truncated download or copy?)"
        )


def lines_of(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 lines (bad bytes replaced) of a stream of byte chunks."""
    rest = b""
    for chunk in chunks:
        *whole, rest = (rest + chunk).split(b"\n")
        for line in whole:
            yield line.decode("utf-8", errors="replace")
    if rest:
        yield rest.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    """The text of an HTML fragment: block ends are paragraph breaks, <br> a line break."""
    if not html.strip():
        return ""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "br":
            element.tail = "\n" + (element.tail or "")
        elif element.tag in BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
    lines = [" ".join(line.split()) for line in root.text_content().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def mask_mentions(text: str) -> str:
    """@name, @name@instance and Reddit's u/name become `@user` and `u/user`."""
    return REDDIT_USER.sub(
        lambda m: m.group()[: m.group().index("u/")] + "u/user", MENTION.sub("@user", text)
    )


def author_hash(platform: str, author: Any, salt: str) -> str | None:
    """sha256 of salt, platform and author (hex, first 32 digits); None for no author."""
    if not isinstance(author, str) or not author or author in DELETED:
        return None
    return hashlib.sha256(f"{salt}\0{platform}\0{author}".encode()).hexdigest()[:32]


def iso_utc(value: Any) -> str | None:
    """ISO 8601 UTC (`2015-08-17T12:00:00Z`) of epoch seconds or an ISO string; else None."""
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and _number(value)):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _message(platform: str, **fields: Any) -> dict[str, Any]:
    return {"platform": platform, **fields}


def reddit_messages(thing: Any) -> Iterator[dict[str, Any]]:
    """Messages (or skip markers `{"skip": reason}`) of a Reddit API value: Listings, t1/t3
    things with their nested `replies`, `morechildren` answers, lists of those."""
    if isinstance(thing, list):
        for item in thing:
            yield from reddit_messages(item)
        return
    if not isinstance(thing, dict):
        yield {"skip": "not_object"}
        return
    if "json" in thing and isinstance(thing["json"], dict):  # /api/morechildren
        yield from reddit_messages((thing["json"].get("data") or {}).get("things", []))
        return
    kind, data = thing.get("kind"), thing.get("data")
    if kind == "Listing" and isinstance(data, dict):
        yield from reddit_messages(data.get("children", []))
        return
    if kind in ("t1", "t3") and isinstance(data, dict):
        yield reddit_message(data, kind)
        if kind == "t1" and isinstance(data.get("replies"), dict):
            yield from reddit_messages(data["replies"])
        return
    if kind == "more":
        yield {"skip": "reddit_more_placeholder"}
        return
    yield {"skip": f"reddit_{kind}_not_a_message" if isinstance(kind, str) else "not_a_message"}


def reddit_message(data: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """One Reddit comment (t1) or submission (t3) from its `data` (API or Pushshift)."""
    kind = kind or ("t1" if "body" in data else "t3")
    name = data.get("name") or f"{kind}_{data.get('id')}"
    if kind == "t1":
        text, parent, thread = data.get("body"), data.get("parent_id"), data.get("link_id")
        title = None
    else:
        title = data.get("title")
        body = data.get("selftext") or ""
        text = title if body in ("", *DELETED) else f"{title}\n\n{body}"
        parent, thread = None, name
    if not isinstance(text, str) or not text.strip():
        return {"skip": "no_content"}
    if text.strip() in DELETED:
        return {"skip": "deleted"}
    permalink = data.get("permalink")
    url = f"https://www.reddit.com{permalink}" if isinstance(permalink, str) else None
    return _message(
        "reddit",
        id=str(name),
        parent_id=parent,
        thread_id=thread,
        created_at=iso_utc(data.get("created_utc")),
        author=data.get("author"),
        text=text,
        url=url,
        title=title,
    )


def mastodon_message(status: dict[str, Any]) -> dict[str, Any]:
    """One Mastodon API status; a boost (`reblog`) has no text of its own and is skipped."""
    if status.get("reblog"):
        return {"skip": "mastodon_reblog_no_content"}
    text = html_to_text(status.get("content") or "")
    if not text:
        return {"skip": "no_content"}
    account = status.get("account") if isinstance(status.get("account"), dict) else {}
    parent = status.get("in_reply_to_id")
    return _message(
        "mastodon",
        id=str(status.get("id")),
        parent_id=None if parent is None else str(parent),
        thread_id=None,
        created_at=iso_utc(status.get("created_at")),
        author=account.get("acct"),
        text=text,
        url=status.get("url") or status.get("uri"),
        title=None,
    )


def activitypub_message(item: Any) -> dict[str, Any]:
    """One outbox item: a Create wrapping a Note (or a bare Note); an Announce (a boost: only
    the boosted object's URI) or an object without content is skipped."""
    if not isinstance(item, dict):
        return {"skip": "not_object"}
    if item.get("type") == "Announce":
        return {"skip": "activitypub_announce_no_content"}
    note = item.get("object") if item.get("type") == "Create" else item
    if not isinstance(note, dict):
        return {"skip": "activitypub_no_content"}
    html = note.get("content")
    if not isinstance(html, str) and isinstance(note.get("contentMap"), dict):
        html = next(iter(note["contentMap"].values()), None)
    text = html_to_text(html) if isinstance(html, str) else ""
    if not text:
        return {"skip": "activitypub_no_content"}
    url = note.get("url") if isinstance(note.get("url"), str) else note.get("id")
    return _message(
        "activitypub",
        id=str(note.get("id")),
        parent_id=note.get("inReplyTo") if isinstance(note.get("inReplyTo"), str) else None,
        thread_id=note.get("conversation") if isinstance(note.get("conversation"), str) else None,
        created_at=iso_utc(note.get("published") or item.get("published")),
        author=note.get("attributedTo") or item.get("actor"),
        text=text,
        url=url,
        title=None,
    )


def object_messages(value: Any) -> Iterator[dict[str, Any]]:
    """Messages of one JSON value, its platform read from its shape."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "account" in v for v in value):
            yield from (mastodon_message(v) for v in value)
        else:
            for item in value:
                yield from object_messages(item)
        return
    if not isinstance(value, dict):
        yield {"skip": "not_object"}
        return
    if "interactions" in value:  # a recorded PRAW / vcrpy cassette: the bodies are JSON text
        for exchange in value["interactions"]:
            body = ((exchange.get("response") or {}).get("body") or {}).get("string")
            if isinstance(body, str) and body.lstrip().startswith(("{", "[")):
                try:
                    parsed = json.loads(body)
                except json.JSONDecodeError:
                    yield {"skip": "not_json"}
                    continue
                if not (isinstance(parsed, dict) and "access_token" in parsed):
                    yield from object_messages(parsed)
        return
    if "ancestors" in value or "descendants" in value:  # a Mastodon status context
        for status in [*value.get("ancestors", []), *value.get("descendants", [])]:
            yield mastodon_message(status) if isinstance(status, dict) else {"skip": "not_object"}
        return
    if value.get("type") in ("OrderedCollection", "OrderedCollectionPage", "Collection"):
        items = value.get("orderedItems", value.get("items", []))
        yield from (activitypub_message(item) for item in items)
        return
    if value.get("type") in ("Create", "Note", "Announce"):
        yield activitypub_message(value)
        return
    if "account" in value and "content" in value:
        yield mastodon_message(value)
        return
    if "kind" in value or "json" in value:
        yield from reddit_messages(value)
        return
    if "body" in value or "selftext" in value or "title" in value:  # a Pushshift line
        yield reddit_message(value)
        return
    yield {"skip": "not_a_message"}


def file_messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Messages of a file's lines: NDJSON (streamed) when its first line is a whole object and
    more lines follow; else the whole file is one JSON document (read into memory)."""
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise BadFile("empty", "the file holds no data")
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
    second = next((line for line in lines if line.strip()), None)
    if second is None and head is not None:  # a one-line (minified) JSON document
        yield from object_messages(head)
        return
    if head is None or second is None:  # one JSON document over several lines, read whole
        text = "\n".join([first, *([second] if second else []), *lines])
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise BadFile("not_json", f"not JSON nor NDJSON: {err}") from err
        yield from object_messages(value)
        return
    for line in [first, second]:
        yield from ndjson_line(line)
    for line in lines:
        if line.strip():
            yield from ndjson_line(line)


def ndjson_line(line: str) -> Iterator[dict[str, Any]]:
    """Messages of one NDJSON line; a line that is not JSON, or not an object, is skipped."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        yield {"skip": "line_not_json"}
        return
    if not isinstance(value, dict):
        yield {"skip": "line_not_object"}
        return
    yield from object_messages(value)


def with_threads(messages: list[dict[str, Any]]) -> None:
    """Fill in a missing `thread_id` from the reply chain within the file: the oldest ancestor
    found, or the id of the first parent that is not in the file."""
    by_id = {m["id"]: m for m in messages}
    for message in messages:
        if message["thread_id"]:
            continue
        node, seen = message, set()
        while node["parent_id"] and node["parent_id"] in by_id and node["id"] not in seen:
            seen.add(node["id"])
            node = by_id[node["parent_id"]]
        message["thread_id"] = node["parent_id"] or node["id"]


def social_messages(location: str, config: CrawlConfig) -> Iterator[tuple]:
    """('message', platform, id, thread_id, message) and ('skip', reason) items of one file.

    Messages that carry their thread (Reddit `link_id`, ActivityPub `conversation`) stream
    through, so a large NDJSON dump is not held in memory; the others (Mastodon statuses) are
    held until the file is read and their threads follow from the reply chains in it."""
    name, pending = source_name(location), []
    try:
        with open_source(location, config) as stream:
            for found in file_messages(lines_of(decompressed(stream))):
                if "skip" in found:
                    yield ("skip", found["skip"])
                elif found["thread_id"]:
                    yield (
                        "message",
                        found["platform"],
                        found["id"],
                        found["thread_id"],
                        {**found, "file": name},
                    )
                else:
                    pending.append(found)
    except BadFile as err:
        # The messages read before a truncation are kept; the file is counted as bad.
        yield ("skip", f"file_{err.reason}")
        print(f"crawl.social_paths: {location}: {err}")  # noqa: T201 (executor log)
    with_threads(pending)
    for m in pending:
        yield ("message", m["platform"], m["id"], m["thread_id"], {**m, "file": name})


def message_record(m: dict[str, Any], salt: str, ingested_at: str) -> tuple:
    """A row in `DOCUMENT_SCHEMA` order of one message."""
    meta = {
        "platform": m["platform"],
        "message_id": m["id"],
        "thread_id": m["thread_id"],
        "parent_id": m["parent_id"],
        "created_at": m["created_at"],
        "author_hash": author_hash(m["platform"], m["author"], salt),
        "social_file": m["file"],
    }
    doc_id = document_id(f"social:{m['platform']}:{m['id']}")
    text = mask_mentions(m["text"])
    return (doc_id, m["url"], "social", m["title"], text, None, None, ingested_at, meta)


def reply_order(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages parent before child (depth first), siblings and roots by time then id; a
    message whose parent is not in the thread is a root."""
    ids = {m["id"] for m in messages}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for m in sorted(messages, key=_when):
        parent = m["parent_id"] if m["parent_id"] in ids and m["parent_id"] != m["id"] else None
        children.setdefault(parent, []).append(m)
    ordered, seen, stack = [], set(), list(reversed(children.get(None, [])))
    while stack:
        m = stack.pop()
        if m["id"] not in seen:
            seen.add(m["id"])
            ordered.append(m)
            stack.extend(reversed(children.get(m["id"], [])))
    return ordered + sorted((m for m in messages if m["id"] not in seen), key=_when)  # cycles


def _when(m: dict[str, Any]) -> tuple[str, str]:
    return ((m["created_at"] or ""), m["id"])


def thread_record(messages: list[dict[str, Any]], salt: str, ingested_at: str) -> tuple:
    """A row in `DOCUMENT_SCHEMA` order of one thread: its messages joined in reply order."""
    ordered = reply_order(messages)
    root = ordered[0]
    platform, thread = root["platform"], root["thread_id"]
    authors = {author_hash(platform, m["author"], salt) for m in ordered} - {None}
    meta = {
        "platform": platform,
        "thread_id": thread,
        "parent_id": root["parent_id"],
        "created_at": root["created_at"],
        "author_hash": author_hash(platform, root["author"], salt),
        "messages": str(len(ordered)),
        "authors": str(len(authors)),
        "social_file": root["file"],
    }
    text = "\n\n".join(mask_mentions(m["text"]) for m in ordered)
    doc_id = document_id(f"social:{platform}:thread:{thread}")
    title = next((m["title"] for m in ordered if m["title"]), None)
    return (doc_id, root["url"], "social", title, text, None, None, ingested_at, meta)


def ingest_social(spark: SparkSession, config: CrawlConfig, out_dir: Path) -> dict[str, int]:
    """Write the messages (or threads) of `crawl.social_paths` to `out_dir`; return counts:
    files, messages, documents, duplicate messages and `skipped_<reason>` per reason. No
    paths: nothing is written."""
    locations = expand_sources(config.social_paths, "crawl.social_paths")
    if not locations:
        return {}
    ingested_at = datetime.now(UTC).isoformat(timespec="seconds")
    items = (
        spark.sparkContext.parallelize(locations, len(locations))
        .flatMap(lambda location: social_messages(location, config))
        .cache()
    )
    kinds = items.map(lambda i: i[1] if i[0] == "skip" else "").countByValue()
    found = items.filter(lambda i: i[0] == "message")
    # The same message can be in several answers (a cassette, overlapping exports): keep one.
    unique = found.map(lambda i: ((i[1], i[2]), i)).reduceByKey(lambda a, _b: a).values()
    salt = config.social_salt
    if config.social_assemble == "thread":
        rows = (
            unique.map(lambda i: ((i[1], i[3]), i[4]))
            .groupByKey()
            .map(lambda kv: thread_record(list(kv[1]), salt, ingested_at))
        )
    else:
        rows = unique.map(lambda i: message_record(i[4], salt, ingested_at))
    spark.createDataFrame(rows, DOCUMENT_SCHEMA).write.parquet(str(out_dir))
    items.unpersist()
    written = spark.read.parquet(str(out_dir))
    documents = written.count()
    messages = documents
    if config.social_assemble == "thread":
        messages = written.selectExpr("sum(cast(meta['messages'] as long))").first()[0] or 0
    counts = {
        "files": len(locations),
        "messages": messages,
        "duplicate_messages": kinds.get("", 0) - messages,
        "documents": documents,
    }
    skipped = {reason: n for reason, n in kinds.items() if reason}
    counts.update({f"skipped_{reason}": n for reason, n in sorted(skipped.items())})
    return counts
