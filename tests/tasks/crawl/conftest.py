"""Fixtures for the crawl tests."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture()
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
