"""Which source record id first used each natural key in a run (duplicate-key detection).

A run sees every changed record once, so this is the one structure that grows with a run (an
initial load of a million lines holds a million keys), and it is kept compact: an open-addressing
table over three arrays of machine words, 48 bytes per key at most, and no Python object per key.
A dict of integers cost about 110 bytes per key, in small objects allocated between one page's
rows and the next, which also kept the memory those rows freed from being handed back.

Keys are held as 64-bit digests (a false match is a one-in-10^9 chance at 200,000 keys: the record
would be reported as a duplicate, never silently dropped) and Dataverse ids as the 128 bits of
their GUID; an id that is not canonical GUID text is kept as text on the side.
"""

from __future__ import annotations

import hashlib
import uuid
from array import array

_WORD = (1 << 64) - 1
_INITIAL_SLOTS = 1024


def _words(slots: int) -> array[int]:
    return array("Q", bytes(8 * slots))


class SeenKeys:
    """Natural key → the source id that first used it in this run."""

    def __init__(self) -> None:
        self._keys = _words(_INITIAL_SLOTS)  # key digests; 0 marks an empty slot
        self._high = _words(_INITIAL_SLOTS)  # the GUID's upper and lower 64 bits
        self._low = _words(_INITIAL_SLOTS)
        self._texts: dict[int, str] = {}  # key digest → an id that is not canonical GUID text
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _digest(key: str) -> int:
        raw = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(raw, "big") or 1

    def _slot(self, digest: int) -> int:
        """The slot holding ``digest``, or the empty slot where it belongs (linear probing)."""
        keys = self._keys
        mask = len(keys) - 1
        index = digest & mask
        while True:
            found = keys[index]
            if found in (digest, 0):
                return index
            index = (index + 1) & mask

    def add(self, key: str, source_id: str) -> None:
        digest = self._digest(key)
        index = self._slot(digest)
        if self._keys[index] == 0:
            self._keys[index] = digest
            self._count += 1
        try:
            parsed: uuid.UUID | None = uuid.UUID(source_id)
        except ValueError:
            parsed = None
        if parsed is not None and str(parsed) == source_id:  # only canonical text comes back exactly
            self._texts.pop(digest, None)
            self._high[index], self._low[index] = parsed.int >> 64, parsed.int & _WORD
        else:
            self._texts[digest] = source_id
        if self._count * 2 > len(self._keys):
            self._grow()

    def first_id(self, key: str) -> str | None:
        digest = self._digest(key)
        index = self._slot(digest)
        if self._keys[index] == 0:
            return None
        text = self._texts.get(digest)
        if text is not None:
            return text
        return str(uuid.UUID(int=(self._high[index] << 64) | self._low[index]))

    def _grow(self) -> None:
        """Twice the slots, every key re-placed: keeps probes short at most half full."""
        keys, high, low = self._keys, self._high, self._low
        slots = 2 * len(keys)
        self._keys, self._high, self._low = _words(slots), _words(slots), _words(slots)
        for old, digest in enumerate(keys):
            if digest:
                index = self._slot(digest)
                self._keys[index] = digest
                self._high[index], self._low[index] = high[old], low[old]
