"""One HTTP exchange with a checked address: timeouts, a hard deadline, a capped body.

The socket is opened to the IP that `safety.checked_address` approved (TLS still verifies the
host name). Every read is bounded by the read timeout and the attempt's deadline; a timer
shuts the socket at the deadline, so a server that drips bytes cannot hold a worker. The
body is read as a stream and gzip/deflate are decoded as it arrives, never past `max_bytes`
of decoded output, so a compression bomb costs at most `max_bytes` of memory. A large file
is read as a `BodyStream` instead (`opened`), never held whole.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import SplitResult

CHUNK = 65536


@dataclass
class Reply:
    """What came back: the status, headers, the decoded (possibly cut) body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    truncated: bool


class Deadline:
    """Shuts `sock` down when the deadline passes; `arm` sets the timeout of the next read."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self.sock, self.deadline, self.read_timeout = sock, deadline, read_timeout
        self.fired = False
        self.timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self.fired:
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(min(self.read_timeout, remaining))


def _decoder(content_encoding: str) -> zlib._Decompress | None:
    """A streaming decoder for the Content-Encoding, None for identity."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if encoding == "deflate":
        return zlib.decompressobj(wbits=15)
    if encoding in ("", "identity"):
        return None
    raise ValueError(f"content encoding: {encoding!r} is not supported")


def read_capped(
    response: http.client.HTTPResponse, guard: Deadline, max_bytes: int
) -> tuple[bytes, bool]:
    """The decoded body, cut at `max_bytes`; and whether it was cut."""
    decoder = _decoder(response.headers.get("Content-Encoding", ""))
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        guard.arm()
        raw = response.read1(CHUNK)
        if not raw:
            if guard.fired:  # the deadline shut the socket: not the end of the body
                raise TimeoutError("request deadline passed")
            if decoder is not None:
                chunks.append(decoder.flush()[: max_bytes - size + 1])
            break
        data = decoder.decompress(raw, max_bytes - size + 1) if decoder else raw
        chunks.append(data)
        size += len(data)
    body = b"".join(chunks)
    return body[:max_bytes], len(body) > max_bytes


def _connect(parts: SplitResult, address: tuple[str, int], timeout: float) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    if parts.scheme.lower() != "https":
        return sock
    try:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
    except BaseException:
        sock.close()
        raise


@contextmanager
def opened(
    parts: SplitResult,
    address: tuple[str, int],
    headers: dict[str, str],
    timeouts: tuple[float, float, float],
) -> Iterator[tuple[http.client.HTTPResponse, Deadline]]:
    """An open GET of `parts` at `address` and the deadline guard of its reads; `timeouts` =
    (connect, read, total). The connection is closed on leaving."""
    connect_timeout, read_timeout, total = timeouts
    deadline = time.monotonic() + total
    sock = _connect(parts, address, min(connect_timeout, total))
    guard = Deadline(sock, deadline, read_timeout)
    cls = (
        http.client.HTTPSConnection
        if parts.scheme.lower() == "https"
        else http.client.HTTPConnection
    )
    conn = cls(parts.hostname, address[1])
    conn.sock = sock
    try:
        guard.arm()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers=headers)
        guard.arm()
        yield conn.getresponse(), guard
    except (OSError, http.client.HTTPException) as err:
        if guard.fired:
            raise TimeoutError("request deadline passed") from err
        raise
    finally:
        guard.timer.cancel()
        conn.close()


class BodyStream(io.RawIOBase):
    """The body of an open response as a stream (no content decoding): each read bounded by
    the read timeout and the deadline; past `max_bytes` a read raises OSError naming `limit`
    (a safety cap on what is read, not memory: nothing is held here)."""

    def __init__(
        self, response: http.client.HTTPResponse, guard: Deadline, max_bytes: int, limit: str
    ) -> None:
        super().__init__()
        self.response, self.guard, self.max_bytes, self.limit = response, guard, max_bytes, limit
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.response.isclosed():  # the whole body was read (http.client closed it)
            return 0
        self.guard.arm()
        size = self.response.readinto(memoryview(buffer)[:CHUNK])
        if not size and self.guard.fired:  # the deadline shut the socket: not the end
            raise TimeoutError("request deadline passed")
        self.read_bytes += size
        if self.read_bytes > self.max_bytes:
            raise OSError(f"larger than {self.limit} ({self.max_bytes} bytes)")
        return size


def exchange(
    parts: SplitResult,
    address: tuple[str, int],
    headers: dict[str, str],
    timeouts: tuple[float, float, float],
    want_body: Callable[[int, http.client.HTTPMessage], bool],
    max_bytes: int,
) -> Reply:
    """GET `parts` from `address`; `timeouts` = (connect, read, total). The body is read only
    when `want_body(status, headers)` is true."""
    asked = {"Accept-Encoding": "gzip, deflate", **headers}
    with opened(parts, address, asked, timeouts) as (response, guard):
        body, truncated = b"", False
        if want_body(response.status, response.headers):
            body, truncated = read_capped(response, guard, max_bytes)
        return Reply(response.status, response.headers, body, truncated)
