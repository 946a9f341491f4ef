"""Server-driven paging over ``@odata.nextLink`` for both services.

Links are followed exactly as the service wrote them (Dataverse's ``$skiptoken`` is an XML paging
cookie that must not be re-encoded). A service that hands back a link it already gave, or the URL
just fetched, would make the sync read forever; that is a broken protocol, reported as ``Fatal``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.odata.errors import Fatal

__all__ = ["Page", "iter_pages"]


@dataclass(frozen=True)
class Page:
    """One page: its rows, the link to the next page (None on the last), the delta link if any."""

    rows: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None
    raw: Mapping[str, Any]


def _link(doc: Mapping[str, Any], name: str, url: str) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Fatal(f"'{name}' in the response to {_short(url)} is not a string")
    return value


def _short(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def iter_pages(
    fetch: Callable[[str], Mapping[str, Any]],
    first_url: str,
    *,
    max_pages: int = 1_000_000,
) -> Iterator[Page]:
    """Yield pages starting at ``first_url``; ``fetch(url)`` returns the decoded JSON document.

    Pages are fetched lazily, one at a time, so a consumer that stops early costs no extra requests.
    Raises ``Fatal`` on a paging loop, a body without a ``value`` array, or more than ``max_pages``.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    seen: set[str] = {first_url}
    url = first_url
    count = 0
    while True:
        doc = fetch(url)
        count += 1
        if not isinstance(doc, Mapping):
            raise Fatal(f"The response to {_short(url)} is not a JSON object")
        rows = doc.get("value", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise Fatal(f"The response to {_short(url)} has no 'value' array of rows")
        next_link = _link(doc, "@odata.nextLink", url)
        delta_link = _link(doc, "@odata.deltaLink", url)
        yield Page(rows=rows, next_link=next_link, delta_link=delta_link, raw=doc)
        if next_link is None:
            return
        if next_link == url or next_link in seen:
            raise Fatal(f"paging loop: next link already followed: {_short(next_link)}")
        if count >= max_pages:
            raise Fatal(f"paging stopped after {max_pages} pages (limit) at {_short(url)}")
        seen.add(next_link)
        url = next_link
