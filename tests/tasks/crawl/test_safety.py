"""Only http(s) to public addresses, unless the config allows a private one by name or range."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest

from tasks.config import CrawlConfig
from tasks.crawl.fetch import fetch_url
from tasks.crawl.safety import UnsafeURLError, checked_address, is_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.100.100.200",
        "224.0.0.1",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:127.0.0.1",
    ],
)
def test_private_loopback_link_local_and_metadata_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_are_public():
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_checked_address_refuses_unless_allowed():
    loopback = urlsplit("http://127.0.0.1:8080/x")
    with pytest.raises(UnsafeURLError, match="allow_private_hosts"):
        checked_address(loopback, [])
    assert checked_address(loopback, ["127.0.0.1"]) == ("127.0.0.1", 8080)
    assert checked_address(loopback, ["127.0.0.0/8"]) == ("127.0.0.1", 8080)
    assert checked_address(urlsplit("https://localhost/"), ["localhost"])[1] == 443
    with pytest.raises(UnsafeURLError, match="non-public address 169.254.169.254"):
        checked_address(urlsplit("http://169.254.169.254/latest/"), ["127.0.0.1"])
    with pytest.raises(UnsafeURLError, match="scheme 'ftp'"):
        checked_address(urlsplit("ftp://127.0.0.1/"), ["127.0.0.1"])


def test_fetch_url_refuses_private_hosts_by_default(fault_server):
    base, hits = fault_server
    record = fetch_url(base + "/ok.html", CrawlConfig())
    assert record["outcome"] == "unsafe" and "127.0.0.1" in record["error"]
    assert record["status"] is None and not hits  # nothing was sent, not even robots.txt
    assert fetch_url("file:///etc/passwd", CrawlConfig())["outcome"] == "unsafe"
