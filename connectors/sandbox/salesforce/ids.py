"""Salesforce record Ids: key prefixes, the 15 → 18 character checksum, generation and validation.

Real Ids are 15 case-sensitive base-62 characters (3-character key prefix naming the object, 2 for the pod,
one reserved, 9 for the record number) plus, in the API, a 3-character suffix that makes them
case-insensitively unique. The suffix encodes, for each 5-character chunk, which characters are upper-case.
The emulator produces and checks the same shape so that a connector that truncates, lower-cases or mixes
up object types gets the same ``MALFORMED_ID`` it would get from Salesforce.
"""

from __future__ import annotations

import threading

KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Organization": "00D",
    "OpportunityContactRole": "00K",
    "CustomField": "00N",
    "Lead": "00Q",
    "Profile": "00e",
    "FieldPermissions": "01k",
    "PermissionSetAssignment": "0Pa",
    "PermissionSet": "0PS",
    "AsyncJob": "750",
    "QueryLocator": "01g",
}
"""Key prefix per object (the first three characters of every Id of that object)."""

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ALNUM = frozenset(_BASE62)
_POD = "Hn0"  # pod (2 characters) + reserved character, constant for one emulated org


def checksum(id15: str) -> str:
    """The 3-character case-safety suffix Salesforce appends to a 15-character Id."""
    suffix = []
    for chunk in range(3):
        flags = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                flags |= 1 << position
        suffix.append(_SUFFIX_ALPHABET[flags])
    return "".join(suffix)


def normalize(value: object) -> str | None:
    """The 18-character form of ``value`` if it is a well-formed Id (15 or 18 characters), else ``None``.

    An 18-character Id whose suffix does not match its first 15 characters is malformed, as Salesforce
    treats it (the suffix is how it detects Ids whose case was changed on the way).
    """
    if not isinstance(value, str) or len(value) not in (15, 18) or not set(value) <= _ALNUM:
        return None
    head = value[:15]
    full = head + checksum(head)
    if len(value) == 18 and value[15:] != full[15:]:
        # The suffix is case-insensitive in Salesforce; accept any case but not another value.
        return full if value[15:].upper() == full[15:].upper() else None
    return full


def prefix_of(record_id: str) -> str:
    """The key prefix (first three characters) of an Id."""
    return record_id[:3]


def object_for_prefix(prefix: str) -> str | None:
    """The object name owning a key prefix, if the emulator knows it."""
    for name, known in KEY_PREFIXES.items():
        if known == prefix:
            return name
    return None


class IdFactory:
    """Hands out new, never repeated 18-character Ids per key prefix; thread-safe."""

    def __init__(self, start: int = 1_000) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()
        self._start = start

    def __getstate__(self) -> dict[str, object]:
        # A saved org (clm sandbox serve --state) keeps its counters; the lock is made anew.
        return {"next": dict(self._next), "start": self._start}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._next = dict(state["next"])  # type: ignore[call-overload]
        self._start = int(state["start"])  # type: ignore[call-overload]
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """A fresh Id with ``prefix`` (e.g. ``003Hn00000001AbcQAG``-like)."""
        with self._lock:
            number = self._next.get(prefix, self._start)
            self._next[prefix] = number + 1
        digits = []
        for _ in range(9):
            number, rest = divmod(number, 62)
            digits.append(_BASE62[rest])
        id15 = prefix + _POD + "".join(reversed(digits))
        return id15 + checksum(id15)

    def for_object(self, object_name: str) -> str:
        """A fresh Id for a record of ``object_name``."""
        return self.new(KEY_PREFIXES[object_name])
