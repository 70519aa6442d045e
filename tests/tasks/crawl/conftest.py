"""Fixtures for the crawl tests: a free port, a misbehaving HTTP server on 127.0.0.1, and a
site whose redirects leave the crawl's scope; every test starts with this process's robots.txt
cache and host gate empty."""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.politeness import GATE
from tasks.crawl.robots import ROBOTS

BIG_BYTES = 50_000_000
# 40 MB of zeros, about 40 KB gzipped: decoded in full it would be 40x the test's size cap.
BOMB = gzip.compress(b"\0" * 40_000_000, compresslevel=9)
LATIN_TEXT = (
    "Ça coûte très cher, déjà été. Les élèves français ont reçu leurs résultats "
    "après la rentrée ; où sont les cahiers ? Noël à la maison, c'est déjà ça."
)
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
LISTED = ["/ok.html", "/etag.html", "/latin.html"]  # the pages /sitemap.xml.gz lists
SLOW_S = 6.0  # /slow.html's delay: three times `_fault_config`'s 2 s read and total timeouts
FAULTS = {
    "/ok.html": "a page",
    "/slow.html": f"headers come after {SLOW_S:g} s",
    "/drip.html": "the body drips a byte per 0.1 s",
    "/500.html": "always 500",
    "/flaky.html": "503 once, then 200",
    "/429.html": "429 with Retry-After: 1 once, then 200",
    "/429-always.html": "429 with Retry-After: 3600",
    "/reset.html": "connection reset",
    "/loop-a.html": "redirects to loop-b, which redirects back",
    "/endless/0": "redirects to /endless/<n+1> forever",
    "/big.html": "a 50 MB body",
    "/bomb.html": "a gzip bomb",
    "/bad-bytes.html": "invalid UTF-8 in a page declared UTF-8",
    "/latin.html": "Latin-1 bytes, no charset declared",
    "/image.png": "an image",
    "/private/secret.html": "disallowed by robots.txt",
    "/to-metadata.html": "redirects to the cloud metadata address",
    "/etag.html": "ETag v1; answers If-None-Match v1 with 304",
}

OUTSIDE_HOST = "127.0.0.2"  # another loopback host: outside a crawl of 127.0.0.1
SCOPE_REDIRECTS = {  # the redirect pages of `scope_site`, by path: (target, what it tests)
    "/to-outside.html": ("<outside>/ok.html", "another host, outside the crawl's scope"),
    "/to-excluded.html": ("/excluded/page.html", "this host, a path crawl.exclude_patterns drops"),
    "/to-private.html": ("/private/secret.html", "this host, a path robots.txt disallows"),
    "/to-ok.html": ("/ok.html", "this host, in scope: followed"),
}


def _fault_config(**overrides: object) -> CrawlConfig:
    values = dict(
        allow_private_hosts=["127.0.0.1"],
        # Long enough that a stalled scheduler on a loaded machine does not turn into a retry
        # (the tests count hits); /slow.html (SLOW_S) and /drip.html (10 s) still time out.
        timeout_s=2.0,
        connect_timeout_s=3.0,
        read_timeout_s=2.0,
        max_retries=2,
        backoff_s=0.05,
        max_retry_after_s=1.5,
        max_bytes=1_000_000,
        max_redirects=5,
        time_budget_s=30.0,
    )
    return CrawlConfig(**{**values, **overrides})


class _FaultHandler(BaseHTTPRequestHandler):
    hits: Counter[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html", **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(headers.pop("length", len(body))))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: C901, PLR0912 - one branch per fault
        path = self.path
        self.hits[path] += 1
        first = self.hits[path] == 1
        if path == "/robots.txt":
            self._send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif path == "/":
            links = "".join(f'<a href="{p}">{p}</a>\n' for p in FAULTS)
            self._send(200, f"<html><body>{links}</body></html>".encode())
        elif path == "/slow.html":
            time.sleep(SLOW_S)
            self._send(200, b"too late")
        elif path == "/drip.html":
            self._send(200, b"", length=1000)
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/500.html" or (path == "/flaky.html" and first):
            self._send(500 if path == "/500.html" else 503, b"oops")
        elif path == "/429.html" and first:
            self._send(429, b"slow down", Retry_After="1")
        elif path == "/429-always.html":
            self._send(429, b"slow down", Retry_After="3600")
        elif path == "/reset.html":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif path in ("/loop-a.html", "/loop-b.html"):
            other = "/loop-b.html" if path == "/loop-a.html" else "/loop-a.html"
            self._send(302, Location=other)
        elif path.startswith("/endless/"):
            self._send(302, Location=f"/endless/{int(path.rsplit('/', 1)[1]) + 1}")
        elif path == "/big.html":
            self._send(200, b"", length=BIG_BYTES)
            chunk = b"<p>" + b"x" * 65530 + b"</p>"
            for _ in range(BIG_BYTES // len(chunk)):
                self.wfile.write(chunk)
        elif path == "/bomb.html":
            self._send(200, BOMB, Content_Encoding="gzip")
        elif path == "/bad-bytes.html":
            body = b"<p>caf\xc3\xa9 \xff\xfe broken \xc3 bytes</p>"
            self._send(200, body, "text/html; charset=utf-8")
        elif path == "/latin.html":
            self._send(200, f"<p>{LATIN_TEXT}</p>".encode("latin-1"))
        elif path == "/image.png":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif path == "/to-metadata.html":
            self._send(302, Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/etag.html":
            if self.headers.get("If-None-Match") == '"v1"':
                self._send(304, ETag='"v1"')
            else:
                self._send(200, b"<p>versioned page</p>", ETag='"v1"')
        elif path == "/sitemap-index.xml":
            loc = f"http://{self.headers['Host']}/sitemap.xml.gz"
            index = f'<sitemapindex xmlns="{SITEMAP_NS}"><sitemap><loc>{loc}</loc></sitemap>'
            self._send(200, f"{index}</sitemapindex>".encode(), "application/xml")
        elif path == "/sitemap.xml.gz":
            urls = "".join(
                f"<url><loc>http://{self.headers['Host']}{p}</loc></url>" for p in LISTED
            )
            body = gzip.compress(f'<urlset xmlns="{SITEMAP_NS}">{urls}</urlset>'.encode())
            self._send(200, body, "application/gzip")
        elif path in FAULTS:
            self._send(200, f"<html><title>{path}</title><p>{FAULTS[path]}</p></html>".encode())
        else:
            self._send(404, b"not found")

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # the client hung up (a cut body) or we reset the connection
            pass


class _ScopeHandler(_FaultHandler):
    """The fault server's pages plus `SCOPE_REDIRECTS` and /excluded/page.html."""

    outside: str  # base URL of the out-of-scope server

    def do_GET(self) -> None:
        if self.path in SCOPE_REDIRECTS:
            self.hits[self.path] += 1
            target = SCOPE_REDIRECTS[self.path][0].replace("<outside>", self.outside)
            self._send(302, Location=target)
        elif self.path == "/excluded/page.html":
            self.hits[self.path] += 1
            self._send(200, b"<p>a page the crawl excludes</p>")
        else:
            super().do_GET()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken pipes from clients that stop reading are part of the tests


@contextmanager
def _serving(host: str, handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on `host` (a free port) in a thread; yield the base URL."""
    server = _QuietServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class ScopeSite:
    """`base` serves the fault pages and `SCOPE_REDIRECTS`; `outside` is another host that
    counts every request it gets (robots.txt included) in `outside_hits`."""

    base: str
    hits: Counter[str]
    outside: str
    outside_hits: Counter[str]


@pytest.fixture()
def fault_config() -> Callable[..., CrawlConfig]:
    """Makes crawl configs with small timeouts, backoffs and caps (overridable by keyword),
    allowing 127.0.0.1 and nothing else."""
    return _fault_config


@pytest.fixture()
def fault_server() -> Iterator[tuple[str, Counter[str]]]:
    """A server on 127.0.0.1 with one misbehaving path per fault (`FAULTS`); yields its base
    URL ('http://127.0.0.1:<port>') and the hit count per path."""
    hits: Counter[str] = Counter()
    with _serving("127.0.0.1", type("Handler", (_FaultHandler,), {"hits": hits})) as base:
        yield base, hits


@pytest.fixture()
def scope_site() -> Iterator[ScopeSite]:
    """The fault server on 127.0.0.1 with redirect pages (`SCOPE_REDIRECTS`), one of them to
    a second server on `OUTSIDE_HOST`; skipped where that address cannot be bound."""
    outside_hits: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    with ExitStack() as servers:
        try:
            outside = servers.enter_context(
                _serving(OUTSIDE_HOST, type("Outside", (_FaultHandler,), {"hits": outside_hits}))
            )
        except OSError as err:  # e.g. macOS routes only 127.0.0.1 to the loopback device
            pytest.skip(f"cannot serve on {OUTSIDE_HOST}: {err}")
        handler = type("Handler", (_ScopeHandler,), {"hits": hits, "outside": outside})
        base = servers.enter_context(_serving("127.0.0.1", handler))
        yield ScopeSite(base, hits, outside, outside_hits)


@pytest.fixture(autouse=True)
def _empty_crawl_caches() -> None:
    """Start each test with no robots.txt rules and no host-gate state in this process: test
    servers bind port 0, so a later server can get an earlier one's port (origin) and would
    otherwise inherit its rules, a cached failure ('connection refused') or its next start."""
    ROBOTS.clear()
    GATE.clear()


@pytest.fixture(scope="session")
def _held_ports() -> Iterator[ExitStack]:
    with ExitStack() as sockets:
        yield sockets


@pytest.fixture()
def closed_port(_held_ports: ExitStack) -> int:
    """A port on 127.0.0.1 that nothing listens on: bound, never listening (connections are
    refused), and held until the session ends, so no later test server gets it while a reused
    Spark worker may still cache the failure of its robots.txt."""
    sock = _held_ports.enter_context(socket.socket())
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]
