"""fetch_url against a misbehaving server: every fault ends as a record, quickly, never a crash."""

from __future__ import annotations

import time

import pytest

from tasks.crawl.fetch import fetch_url
from tests.tasks.crawl.conftest import LATIN_TEXT


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/slow.html", "timeout"),
        ("/500.html", "http 500"),
        ("/reset.html", "connection error: "),
        ("/loop-a.html", "redirect loop: back to "),
        ("/endless/0", "redirect: more than 5 redirects"),
        ("/image.png", "content type: image/png is not allowed"),
        ("/private/secret.html", "robots: disallowed"),
        ("/to-metadata.html", "unsafe: 169.254.169.254 resolves to non-public address"),
        ("/nowhere.html", "http 404"),
    ],
)
def test_a_fault_becomes_the_records_error(fault_server, fault_config, path, error):
    base, hits = fault_server
    started = time.monotonic()
    record = fetch_url(base + path, fault_config())
    assert record["error"].startswith(error), record["error"]
    assert record["outcome"] == error.split(":")[0] and record["html"] is None
    # at most 3 tries of timeout_s = 2 s plus backoff (/slow.html takes >= 6.15 s): 20 s
    # leaves room for a loaded machine and still catches a fetch that hangs
    assert record["bytes"] == 0 and time.monotonic() - started < 20
    assert hits["/robots.txt"] == 1


def test_retries_are_bounded_and_back_off(fault_server, fault_config):
    base, hits = fault_server
    assert fetch_url(base + "/500.html", fault_config(max_retries=2))["error"] == "http 500"
    assert fetch_url(base + "/reset.html", fault_config(max_retries=1))["outcome"] == (
        "connection error"
    )
    assert hits["/500.html"] == 3 and hits["/reset.html"] == 2


def test_a_5xx_or_429_then_success_is_retried_and_retry_after_honoured(fault_server, fault_config):
    base, hits = fault_server
    assert fetch_url(base + "/flaky.html", fault_config())["status"] == 200
    started = time.monotonic()
    record = fetch_url(base + "/429.html", fault_config())
    assert record["status"] == 200 and record["error"] is None
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, not the 0.05 s backoff
    assert hits["/flaky.html"] == hits["/429.html"] == 2


def test_retry_after_is_capped_and_the_deadline_holds(fault_server, fault_config):
    base, hits = fault_server
    started = time.monotonic()
    record = fetch_url(base + "/429-always.html", fault_config(max_retries=1))
    assert record["error"] == "http 429" and hits["/429-always.html"] == 2
    assert 1.4 <= time.monotonic() - started < 6  # Retry-After 3600 capped at 1.5 s
    started = time.monotonic()
    record = fetch_url(base + "/drip.html", fault_config(max_retries=0, timeout_s=1.0))
    # a byte per 0.1 s never trips the read timeout; the 1 s deadline cuts the 10 s body
    assert record["error"] == "timeout" and time.monotonic() - started < 5


def test_a_big_body_and_a_gzip_bomb_are_cut_at_max_bytes(fault_server, fault_config):
    base, _ = fault_server
    for path in ("/big.html", "/bomb.html"):
        record = fetch_url(base + path, fault_config(max_bytes=200_000))
        assert record["error"] is None and record["status"] == 200, path
        assert record["truncated"] and record["bytes"] == len(record["body"]) == 200_000


def test_bad_bytes_and_undeclared_charsets_are_decoded(fault_server, fault_config):
    base, _ = fault_server
    broken = fetch_url(base + "/bad-bytes.html", fault_config())
    assert broken["error"] is None and "broken" in broken["html"]
    latin = fetch_url(base + "/latin.html", fault_config())
    assert LATIN_TEXT in latin["html"]


def test_conditional_request_gets_not_modified(fault_server, fault_config):
    base, _ = fault_server
    first = fetch_url(base + "/etag.html", fault_config())
    assert first["etag"] == '"v1"' and first["outcome"] == "ok"
    again = fetch_url(base + "/etag.html", fault_config(), headers={"If-None-Match": '"v1"'})
    assert (again["status"], again["outcome"], again["bytes"]) == (304, "not_modified", 0)
