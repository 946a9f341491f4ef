"""Deterministic target ids (design.md §3).

A record created in Dataverse gets a primary id derived from its source identity instead of one the
service invents. If a run crashes after the write but before the crosswalk is saved, the next run
computes the same id and its keyed upsert updates the row it already created instead of adding a
duplicate. The namespace is a fixed constant: changing it would orphan every row already synced.
"""

from __future__ import annotations

import uuid

#: Namespace of every p2c-sync UUIDv5. Never change it: ids already written to Dataverse derive from it.
P2C_NAMESPACE: uuid.UUID = uuid.UUID("6f3b1c52-8d4e-5a7f-9b20-3c1d7e5a9f41")


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
    return str(uuid.uuid5(P2C_NAMESPACE, f"{table}|{company}|{natural_key}"))
