"""Parse ``WWW-Authenticate`` headers (RFC 7235) into a list of challenges.

Pure logic, no I/O. The grammar is ambiguous on purpose (a comma separates both
challenges and the parameters of one challenge), so the parser reads a token and
decides by what follows it:

* ``token =`` (optional spaces around ``=``) after a challenge was started: a parameter.
* anything else: the token is a new auth scheme.

Right after a scheme, a ``token68`` (``Negotiate abc==``) is accepted when it is
followed by a comma or the end of the header. Parameter values are tokens or
quoted strings; ``\\"`` and ``\\\\`` escapes inside quoted strings are unescaped.
Scheme names and parameter names are case-insensitive and returned lower-cased;
values keep their case. Malformed pieces are skipped up to the next comma, so the
parser never raises on hostile input.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Challenge", "find_challenge", "parse_challenges"]

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = " \t"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge: ``scheme`` lower-cased, ``params`` keys lower-cased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


class _Scanner:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def eof(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1
        return self.pos - start

    def skip_separators(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE + ",":
            self.pos += 1

    def skip_to_comma(self) -> None:
        """Skip garbage up to the next comma that is not inside a quoted string."""
        while not self.eof() and self.peek() != ",":
            if self.peek() == '"':
                self.quoted()
            else:
                self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """Read a quoted string starting at the opening quote; tolerate a missing close."""
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if ch == '"':
                break
            out.append(ch)
        return "".join(out)

    def at_list_end(self) -> bool:
        """True when only spaces remain before a comma or the end of the text."""
        pos = self.pos
        while pos < len(self.text) and self.text[pos] in _SPACE:
            pos += 1
        return pos >= len(self.text) or self.text[pos] == ","

    def try_token68(self) -> str | None:
        match = _TOKEN68.match(self.text, self.pos)
        if match is None:
            return None
        saved = self.pos
        self.pos = match.end()
        if self.at_list_end():
            return match.group(0)
        self.pos = saved
        return None


def _parse_header(value: str) -> list[Challenge]:
    scan = _Scanner(value)
    challenges: list[Challenge] = []
    current: Challenge | None = None
    while True:
        scan.skip_separators()
        if scan.eof():
            break
        name = scan.token()
        if not name:
            scan.pos += 1
            scan.skip_to_comma()
            continue
        scan.skip_spaces()
        if scan.peek() == "=" and current is not None:
            scan.pos += 1
            scan.skip_spaces()
            param_value = scan.quoted() if scan.peek() == '"' else scan.token()
            current.params.setdefault(name.lower(), param_value)
            if not scan.at_list_end():
                scan.skip_to_comma()
            continue
        if scan.peek() == "=":  # a parameter before any scheme: garbage
            scan.skip_to_comma()
            continue
        token68 = scan.try_token68() if not scan.at_list_end() else None
        current = Challenge(scheme=name.lower(), token68=token68)
        challenges.append(current)
    return challenges


def parse_challenges(headers: str | Iterable[str]) -> list[Challenge]:
    """Parse one ``WWW-Authenticate`` value or several (one per header line).

    Returns the challenges in the order they appear. Never raises.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_header(value))
    return out


def find_challenge(challenges: Iterable[Challenge], scheme: str) -> Challenge | None:
    """The first challenge of ``scheme`` (case-insensitive), or None."""
    wanted = scheme.lower()
    return next((c for c in challenges if c.scheme == wanted), None)
