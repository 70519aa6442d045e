"""PII: e-mail addresses, phone numbers and IP addresses replaced by placeholders, counted.

Never drops a document. The patterns follow datatrove's PIIFormatter for e-mails and IPv4
addresses (private and loopback ranges are kept: they identify nobody) and add
international / North-American phone numbers written with separators.

Look-alikes are left alone: an "address" inside a longer dotted run (an OID such as
1.3.6.1.5.5.7.3.2) or a host name (1.0.0.127.in-addr.arpa), near a version word or other
version numbers on its line ("invalid version numbers: 1 2.7.2.2", "3.2.pl0 3.1.1.6"), and
"phone numbers" that are pieces of a UUID, a dotted quad or a longer run of digit groups.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from tasks.curate.filters.base import DocumentFilter, FilterResult

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
IPV4 = re.compile(rf"(?<![\w.])(?:{OCTET}\.){{3}}{OCTET}(?!\w|\.\w)")
# Version context on the same line, within VERSION_WINDOW characters of the number: a version
# word or another version number with letters ("3.10a", "1.3pl1", "3.2.pl0").
VERSION_WINDOW = 40
VERSION_WORD = re.compile(
    r"\b(?:version|release|build|python|firmware|update|patch|rev(?:ision)?)|\b\d+\.\d+\.?[a-z]",
    re.IGNORECASE,
)
PHONE = re.compile(
    r"(?<![\w./-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
    r"(?![\w/-]|[.-]\w)"
)

EMAIL_PLACEHOLDER = "<EMAIL>"
PHONE_PLACEHOLDER = "<PHONE>"
IP_PLACEHOLDER = "<IP>"


def _public_ip(match: re.Match[str]) -> bool:
    """A public address, not a version number: loopback, private and unspecified are kept."""
    text = match.string
    before = text[max(0, match.start() - VERSION_WINDOW) : match.start()].rsplit("\n", 1)[-1]
    after = text[match.end() : match.end() + VERSION_WINDOW].split("\n", 1)[0]
    if VERSION_WORD.search(before) or VERSION_WORD.search(after):
        return False
    address = ipaddress.ip_address(match.group())
    return not (address.is_private or address.is_loopback or address.is_unspecified)


class PIIFilter(DocumentFilter):
    """Replaces e-mails, phone numbers and public IPv4 addresses; counts each kind."""

    name = "pii"
    counters = ("pii_email", "pii_phone", "pii_ip")

    def _replace(
        self,
        doc: dict[str, Any],
        pattern: re.Pattern[str],
        placeholder: str,
        counter: str,
        only=None,
    ) -> None:
        hits = 0

        def substitute(match: re.Match[str]) -> str:
            nonlocal hits
            if only is not None and not only(match):
                return match.group()
            hits += 1
            return placeholder

        doc["text"] = pattern.sub(substitute, doc["text"])
        if hits:
            self.count(doc, counter, hits)

    def filter(self, doc: dict[str, Any]) -> FilterResult:
        self._replace(doc, EMAIL, EMAIL_PLACEHOLDER, "pii_email")
        self._replace(doc, IPV4, IP_PLACEHOLDER, "pii_ip", only=_public_ip)
        self._replace(doc, PHONE, PHONE_PLACEHOLDER, "pii_phone")
        return True
