"""Resource paths of OData URLs, shared by the two stand-ins.

`accounts(accountnumber='A''1')/name` and `CustomersV2(dataAreaId='usmf',CustomerAccount='C1')`
split the same way on both services: the entity set, the key text between the parentheses
(quotes doubled inside literals, so a `)` in a quoted key does not end it), and the rest.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^([^/(]*)")


class PathSyntaxError(ValueError):
    """The path's key parentheses do not close; each service answers with its own error body."""


def split_resource(path: str) -> tuple[str, str | None, str]:
    """`set(key)/rest` → (set, key text or None, rest without the leading slash)."""
    m = _NAME.match(path)
    name = m.group(1) if m else ""
    pos = len(name)
    key: str | None = None
    if pos < len(path) and path[pos] == "(":
        end = None
        in_quote = False
        i = pos + 1
        while i < len(path):
            ch = path[i]
            if ch == "'":
                if in_quote and i + 1 < len(path) and path[i + 1] == "'":
                    i += 2
                    continue
                in_quote = not in_quote
            elif ch == ")" and not in_quote:
                end = i
                break
            i += 1
        if end is None:
            raise PathSyntaxError(f"Bad Request - Error in query syntax: '{path}'.")
        key = path[pos + 1 : end]
        pos = end + 1
    return name, key, path[pos:].lstrip("/")
