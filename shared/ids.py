"""Deterministic target ids (design.md §3).

A record created in Dataverse gets a primary id derived from its source identity instead of one the
service invents. If a run crashes after the write but before the crosswalk is saved, the next run
computes the same id and its keyed upsert updates the row it already created instead of adding a
duplicate. The namespace is a fixed constant: changing it would orphan every row already synced.
"""

from __future__ import annotations

import hashlib
import uuid

#: Namespace of every p2c-sync UUIDv5. Never change it: ids already written to Dataverse derive from it.
P2C_NAMESPACE: uuid.UUID = uuid.UUID("6f3b1c52-8d4e-5a7f-9b20-3c1d7e5a9f41")
_NAMESPACE_BYTES = P2C_NAMESPACE.bytes


def deterministic_id(table: str, company: str, natural_key: str) -> str:
    """UUIDv5 of ``"{table}|{company}|{natural_key}"`` as a lower-case string.

    ``table`` is the target table's logical name, ``company`` the legal entity (dataAreaId) the source
    row belongs to, so that the same customer account in two companies gets two ids. ``company`` may be
    empty for data that is not company-specific; ``table`` and ``natural_key`` may not, because an empty
    part would make unrelated records collide.
    """
    if not table:
        raise ValueError("deterministic_id needs a table name")
    if not natural_key:
        raise ValueError(f"deterministic_id needs a natural key (table {table!r})")
    # uuid.uuid5 by hand (sha1 of namespace + name, version and variant bits set): the same bits,
    # without building a UUID object per record (`tests/unit/test_ids.py` compares the two)
    name = f"{table}|{company}|{natural_key}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
