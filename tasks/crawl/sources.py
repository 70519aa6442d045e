"""Where the file sources (WARC/WET files, dumps) come from: local paths, globs and URLs.

A local pattern is expanded on the driver (a missing file is an error naming the config key);
a URL is kept as it is and fetched on the executor that reads it, through the crawler's polite
single-URL fetcher, so remote files obey the same user agent, timeouts, size cap and safety.
`open_source` holds a remote file whole in memory (dumps, books, social); `stream_source`
streams it (WARC/WET files).
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from tasks.config import CrawlConfig
from tasks.crawl.fetch import ANY_TYPE, fetch_url
from tasks.crawl.stream import stream_url


def is_url(location: str) -> bool:
    """Whether `location` names a remote http(s) file rather than a local path."""
    return urlsplit(location).scheme.lower() in ("http", "https")


def expand_sources(patterns: list[str], key: str) -> list[str]:
    """URLs as given, local paths and globs as sorted absolute paths; raise FileNotFoundError
    naming `key` for a path or glob that matches no file."""
    found: list[str] = []
    for pattern in patterns:
        if is_url(pattern):
            found.append(pattern)
            continue
        matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        files = [str(Path(m).resolve()) for m in matches if Path(m).is_file()]
        if not files:
            raise FileNotFoundError(
                f"{key}: {pattern!r} matches no file; give existing paths, globs or http(s) URLs"
            )
        found.extend(files)
    return list(dict.fromkeys(found))


def source_name(location: str) -> str:
    """The file name of a path or URL (for metadata and ids)."""
    return Path(urlsplit(location).path if is_url(location) else location).name


@contextmanager
def open_source(location: str, config: CrawlConfig) -> Iterator[BinaryIO]:
    """A binary stream over a local file, or over a URL's body fetched with `fetch_url` (any
    content type, up to `crawl.max_file_bytes`, held in memory). A failed or cut fetch
    raises OSError naming the URL and the reason."""
    if not is_url(location):
        with open(location, "rb") as stream:
            yield stream
        return
    fetched = fetch_url(location, config, content_types=ANY_TYPE, max_bytes=config.max_file_bytes)
    if fetched["error"] is not None:
        raise OSError(f"{location}: {fetched['error']}")
    if fetched["truncated"]:
        raise OSError(
            f"{location}: larger than crawl.max_file_bytes ({config.max_file_bytes}); raise it "
            "or download the file and give its local path"
        )
    yield io.BytesIO(fetched["body"])


@contextmanager
def stream_source(location: str, config: CrawlConfig) -> Iterator[BinaryIO]:
    """A binary stream over a local file or a URL's body (`stream.stream_url`), read as it is
    consumed: memory does not follow the file's size."""
    if not is_url(location):
        with open(location, "rb") as stream:
            yield stream
        return
    with stream_url(location, config) as stream:
        yield stream
