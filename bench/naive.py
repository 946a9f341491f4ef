"""The naive baseline the benchmark compares the product against (issue 7).

What a first, straightforward integration does: read every source page with plain ``httpx``, map
each row with the same compiled mapping the product uses (so both do the same work per record),
and send one POST or PATCH per record, one after the other. No change tracking, no hash skip, no
bulk or ``$batch`` writes, no concurrency, no state. It is deliberately simple: it exists to give
the product's figures a yardstick measured against the same sandbox in the same run.

It applies the template's selection rules (rows they leave out are counted as skipped) and resolves
``synced:`` look-ups (parents) with one GET to the service that holds the parent, cached per run
(``bench/naive_lookups.py``): there is no crosswalk.

With ``limit`` it syncs a sample: the first ``limit / 4`` records of each task that has no parent in
the template (order headers), then only the child records (lines) of the sampled parents, up to
``limit`` records read in all. A sample of whole documents keeps every line's header synced, so its
records/s is that of the full workload and not of headers alone.

Throttled requests are waited out (``Retry-After``) and retried, as any client must; other errors
are counted and the record is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.naive_lookups import NaiveParents, NaiveResolver
from shared.auth import build_auth
from shared.engine.filters import compile_filter
from shared.engine.references import ReferenceCache
from shared.finops import ENTITY_KEYS
from shared.mapping import (
    Catalogue,
    MapContext,
    MappedRecord,
    TaskMapping,
    load_catalogue,
    load_mapping,
    synced_entity,
)
from shared.odata.literals import key_predicate
from shared.settings import Settings
from shared.templates import get_template

JSON_HEADERS = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}


@dataclass
class NaiveResult:
    """What the naive run did: records read and written, requests by kind, throttled responses."""

    read: int = 0
    written: int = 0
    failed: int = 0
    skipped: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    throttled: int = 0

    def count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1


class NaiveSync:
    """One-request-per-record sync of a template, sequential, over plain httpx clients."""

    def __init__(self, settings: Settings, *, limit: int | None = None) -> None:
        self.settings = settings
        self.limit = limit
        self.catalogue: Catalogue = load_catalogue(Path(settings.schema_catalogue_dir))
        verify: Any = settings.ca_bundle or True
        self.clients = {
            "dataverse": httpx.Client(
                auth=build_auth(settings, settings.dataverse_scope), verify=verify, timeout=120.0
            ),
            "finops": httpx.Client(
                auth=build_auth(settings, settings.finops_scope), verify=verify, timeout=120.0
            ),
        }
        self.roots = {
            "dataverse": settings.dataverse_api_url.rstrip("/"),
            "finops": settings.finops_data_url.rstrip("/"),
        }
        self.result = NaiveResult()
        #: Sampled parents by "template.task": the source keys and ids of the headers synced.
        self.sampled: dict[str, set[str]] = {}
        self.roots_read: dict[str, int] = {}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    # -- HTTP -----------------------------------------------------------------------------------

    def _send(self, service: str, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, waiting out 429s; counts every attempt by kind."""
        while True:
            response = self.clients[service].request(method, url, headers=JSON_HEADERS, **kwargs)
            self.result.count(kind)
            if response.status_code != 429:
                return response
            self.result.throttled += 1
            time.sleep(float(response.headers.get("retry-after", "1")))

    def _pages(
        self, service: str, entity_set: str, select: list[str], company: str
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of the source: Dataverse server paging, F&O ``$top``/``$skip``."""
        root = self.roots[service]
        sel = quote(",".join(select), safe=",")
        if service == "dataverse":
            url: str | None = f"{root}/{entity_set}?$select={sel}"
            while url:
                body = self._get_dv(url)
                yield body.get("value", [])
                url = body.get("@odata.nextLink")
            return
        order = ",".join(ENTITY_KEYS.get(entity_set, ()))
        skip, top = 0, self.settings.finops_page_size
        while True:
            url = (
                f"{root}/{entity_set}?cross-company=true&$filter=dataAreaId%20eq%20'{company}'"
                f"&$select={sel}&$top={top}&$skip={skip}" + (f"&$orderby={order}" if order else "")
            )
            rows = self._send(service, "read", "GET", url).json().get("value", [])
            yield rows
            if len(rows) < top:
                return
            skip += len(rows)

    def get(self, service: str, path: str) -> dict[str, Any] | None:
        """One GET of `path` under the service root (a look-up); None when the service says 404."""
        response = self._send(service, "lookup", "GET", f"{self.roots[service]}/{path}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _get_dv(self, url: str) -> dict[str, Any]:
        body: dict[str, Any] = self._send_dv_page(url).json()
        return body

    def _send_dv_page(self, url: str) -> httpx.Response:
        while True:
            response = self.clients["dataverse"].get(
                url,
                headers={**JSON_HEADERS, "Prefer": f"odata.maxpagesize={self.settings.dataverse_page_size}"},
            )
            self.result.count("read")
            if response.status_code != 429:
                response.raise_for_status()
                return response
            self.result.throttled += 1
            time.sleep(float(response.headers.get("retry-after", "1")))

    # -- the run --------------------------------------------------------------------------------

    def run(self, template_name: str, *, create: bool) -> NaiveResult:
        """Sync every task of the template; ``create`` POSTs new F&O rows, otherwise PATCHes them."""
        template = get_template(template_name)
        mapping = load_mapping(Path(self.settings.mappings_dir) / template.mapping_file, self.catalogue)
        references = ReferenceCache(self._reference_loaders())
        parents = NaiveParents(self)
        companies = (
            [self.settings.default_company]
            if template.direction == "sales_to_fno"
            else [c.id for c in self.settings.companies]
        )
        for task in mapping.tasks:
            for company in companies:
                resolver = NaiveResolver(references, parents, company)
                self._run_task(template.name, task, company, resolver, create)
        return self.result

    def _parent_rule(self, template: str, task: TaskMapping) -> tuple[str, str] | None:
        """("template.task" of the parent, source column naming it) for a child task (a line)."""
        for rule in task.rules:
            lookup = rule.rule.lookup or (rule.rule.bind.lookup if rule.rule.bind else None)
            if lookup is None or lookup.optional or rule.read is None:
                continue
            for entity in [lookup.entity] if isinstance(lookup.entity, str) else lookup.entity:
                parsed = synced_entity(entity)
                if parsed is not None and parsed[0] == template and parsed[1]:
                    return f"{template}.{parsed[1]}", rule.read
        return None

    def _in_sample(
        self, template: str, task: TaskMapping, row: dict[str, Any], parent: tuple[str, str] | None
    ) -> bool:
        """With a limit: a root task's first limit/4 rows, then children of sampled parents only."""
        if self.limit is None:
            return True
        if parent is None:
            name = f"{template}.{task.name}"
            self.roots_read[name] = self.roots_read.get(name, 0) + 1
            return self.roots_read[name] <= max(1, self.limit // 4)
        return str(row.get(parent[1])) in self.sampled.get(parent[0], set())

    def _sample(self, template: str, task: TaskMapping, row: dict[str, Any]) -> None:
        """Remember a selected root row (its key and id), so its children are in the sample."""
        if self.limit is None:
            return
        keys = self.sampled.setdefault(f"{template}.{task.name}", set())
        keys.add(str(task.source_key_of(row)))
        if task.source_id_field:
            keys.add(str(row.get(task.source_id_field)))

    def _run_task(
        self, template: str, task: TaskMapping, company: str, resolver: NaiveResolver, create: bool
    ) -> None:
        src, tgt = task.source, task.target
        ctx = MapContext(company=company, resolver=resolver)
        selects = compile_filter(task.source.filter)
        parent = self._parent_rule(template, task)
        for rows in self._pages(src.service, src.entity_set, list(src.select), company):
            for row in rows:
                if self.limit is not None and self.result.read >= self.limit:
                    return
                if not self._in_sample(template, task, row, parent):
                    continue
                self.result.read += 1
                if not selects(row):
                    self.result.skipped += 1
                    continue
                self._sample(template, task, row)
                try:
                    mapped = task.map(row, ctx)
                except Exception:  # a missing reference: the naive client just skips the record
                    self.result.failed += 1
                    continue
                if not isinstance(mapped, MappedRecord):
                    self.result.failed += 1
                    continue
                if self._write(tgt.service, tgt.entity_set, task, mapped, create):
                    self.result.written += 1
                else:
                    self.result.failed += 1

    def _write(
        self, service: str, entity_set: str, task: TaskMapping, rec: MappedRecord, create: bool
    ) -> bool:
        root = self.roots[service]
        if service == "finops":
            if create:
                response = self._send(
                    service, "single", "POST", f"{root}/{entity_set}", json={**rec.payload, **rec.target_key}
                )
            else:
                body = {k: v for k, v in rec.payload.items() if k not in rec.target_key}
                url = f"{root}/{entity_set}{key_predicate(rec.target_key)}?cross-company=true"
                response = self._send(service, "single", "PATCH", url, json=body)
        else:
            # Dataverse: a keyed PATCH is an upsert, the same request for create and update.
            table = task.target_table or ""
            body = {k: v for k, v in rec.payload.items() if k != f"{table}id"}
            response = self._send(
                service, "single", "PATCH", f"{root}/{entity_set}({rec.target_id})", json=body
            )
        return response.status_code < 300

    def _reference_loaders(self) -> dict[str, Any]:
        """Reference tables read page by page with plain GETs, like the product's cache does."""
        catalogue = self.catalogue

        def dataverse_rows(entity: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
            table = catalogue.dataverse_table(entity)
            yield from self._pages("dataverse", table.entity_set, fields, "")

        def finops_rows(entity: str, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
            for company in self.settings.companies:
                yield from self._pages("finops", entity, fields, company.id)

        loaders: dict[str, Any] = {name: dataverse_rows for name in catalogue.dataverse_table_names()}
        loaders.update({name: finops_rows for name in catalogue.finops_entity_set_names()})
        return loaders
