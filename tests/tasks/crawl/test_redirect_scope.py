"""Redirects pass the same scope rules as links: a hop to another host or an excluded path is
refused ('scope: ...') before it is resolved or contacted; robots.txt rules every hop."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tasks.crawl.crawler import PREVIOUS, crawl_web
from tasks.crawl.fetch import fetch_url
from tasks.crawl.scope import crawl_scope
from tasks.crawl.worker import fetch_partition
from tests.tasks.crawl.conftest import OUTSIDE_HOST, SCOPE_REDIRECTS

SCOPE_ERROR = "scope: redirect to {} is outside crawl.allowed_hosts or URL patterns"


@pytest.fixture()
def scope_config(fault_config):
    """A crawl of 127.0.0.1 excluding /excluded/; the outside host is safe to connect to, so
    only the scope can keep the crawler away from it."""
    return fault_config(
        allowed_hosts=["127.0.0.1"],
        allow_private_hosts=["127.0.0.1", OUTSIDE_HOST],
        exclude_patterns=["/excluded/"],
    )


@pytest.fixture()
def resolved(monkeypatch) -> list[str]:
    """The host names the fetcher resolves, in order."""
    names: list[str] = []
    real = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        names.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return names


@pytest.mark.parametrize(
    ("path", "target", "error"),
    [
        ("/to-outside.html", "{outside}/ok.html", SCOPE_ERROR),
        ("/to-excluded.html", "{base}/excluded/page.html", SCOPE_ERROR),
        ("/to-private.html", "{base}/private/secret.html", "robots: disallowed"),
    ],
)
def test_a_redirect_out_of_scope_is_refused_before_it_is_contacted(
    scope_site, scope_config, resolved, path, target, error
):
    base, hits = scope_site.base, scope_site.hits
    target = target.format(base=base, outside=scope_site.outside)
    in_scope = crawl_scope(scope_config, [base + "/"])
    record = fetch_url(base + path, scope_config, in_scope=in_scope)
    assert record["error"] == error.format(target), record["error"]
    assert record["outcome"] == error.split(":")[0]
    assert (record["status"], record["final_url"], record["bytes"]) == (None, base + path, 0)
    assert hits[path] == 1
    assert hits["/excluded/page.html"] == hits["/private/secret.html"] == 0
    assert scope_site.outside_hits.total() == 0  # not even its robots.txt
    assert set(resolved) == {"127.0.0.1"}  # the outside host was never resolved


def test_without_a_scope_redirects_leave_the_crawl_but_robots_still_rules(scope_site, scope_config):
    """What `in_scope=None` (books, dumps, feeds, robots.txt) keeps: redirects are followed
    anywhere safe; robots.txt still refuses a disallowed hop."""
    base, hits, outside = scope_site.base, scope_site.hits, scope_site.outside
    away = fetch_url(base + "/to-outside.html", scope_config)
    assert (away["outcome"], away["final_url"]) == ("ok", outside + "/ok.html")
    assert scope_site.outside_hits["/ok.html"] == 1
    excluded = fetch_url(base + "/to-excluded.html", scope_config)
    assert excluded["outcome"] == "ok" and hits["/excluded/page.html"] == 1
    private = fetch_url(base + "/to-private.html", scope_config)
    assert private["error"] == "robots: disallowed" and hits["/private/secret.html"] == 0


def test_a_redirect_in_scope_is_followed(scope_site, scope_config):
    base = scope_site.base
    in_scope = crawl_scope(scope_config, [base + "/"])
    record = fetch_url(base + "/to-ok.html", scope_config, in_scope=in_scope)
    assert (record["outcome"], record["status"]) == ("ok", 200)
    assert record["final_url"] == base + "/ok.html" and scope_site.hits["/ok.html"] == 1


def test_the_worker_passes_the_scope_to_the_fetcher(scope_site, scope_config):
    base = scope_site.base
    frontier = [
        {"url": base + path, **{f"prev_{c}": None for c in PREVIOUS}} for path in SCOPE_REDIRECTS
    ]
    in_scope = crawl_scope(scope_config, [base + "/"])
    rows = fetch_partition(frontier, 0, scope_config, in_scope, time.time() + 30.0)
    errors = {row["url"].removeprefix(base): row["error"] for row in rows}
    assert errors == {
        "/to-outside.html": SCOPE_ERROR.format(scope_site.outside + "/ok.html"),
        "/to-excluded.html": SCOPE_ERROR.format(base + "/excluded/page.html"),
        "/to-private.html": "robots: disallowed",
        "/to-ok.html": None,
    }
    assert scope_site.outside_hits.total() == 0


def test_the_crawl_records_a_redirect_out_of_scope(spark, scope_site, scope_config, tmp_path):
    base, outside = scope_site.base, scope_site.outside
    scope_config.max_depth = 0
    seeds = [base + path for path in SCOPE_REDIRECTS]
    stats = crawl_web(spark, seeds, scope_config, Path(tmp_path) / "pages")
    rows = {
        r["url"].removeprefix(base): r.asDict()
        for r in spark.read.parquet(str(tmp_path / "pages")).collect()
    }
    assert {path: row["outcome"] for path, row in rows.items()} == {
        "/to-outside.html": "scope",
        "/to-excluded.html": "scope",
        "/to-private.html": "robots",
        "/to-ok.html": "ok",
    }
    assert rows["/to-outside.html"]["error"].startswith(f"scope: redirect to {outside}/")
    assert rows["/to-excluded.html"]["error"].startswith(f"scope: redirect to {base}/excluded/")
    assert rows["/to-ok.html"]["final_url"] == base + "/ok.html"
    assert stats["errors"] == {"robots": 1, "scope": 2} and stats["pages_ok"] == 1
    assert scope_site.outside_hits.total() == 0
    assert scope_site.hits["/excluded/page.html"] == scope_site.hits["/private/secret.html"] == 0
