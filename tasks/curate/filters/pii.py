"""PII: e-mail addresses, phone numbers and IP addresses replaced by placeholders, counted.

Never drops a document. The patterns follow datatrove's PIIFormatter for e-mails and IPv4
addresses (private and loopback ranges are kept: they identify nobody) and add
international / North-American phone numbers written with separators.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from tasks.curate.filters.base import DocumentFilter, FilterResult

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?!\w)"
)

EMAIL_PLACEHOLDER = "<EMAIL>"
PHONE_PLACEHOLDER = "<PHONE>"
IP_PLACEHOLDER = "<IP>"


def _public_ip(match: re.Match[str]) -> bool:
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
