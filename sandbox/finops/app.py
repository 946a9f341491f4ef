"""Finance and Operations OData stand-in (Starlette), following docs `apis.md` Part B.

The product's `FinOpsClient` runs unchanged against this app, so the protocol is reproduced where
it matters to a client: composite natural keys in the URL (`dataAreaId` included), the caller's
default company unless `cross-company=true`, server-driven paging with `$skip` nextLinks (10,000
rows a page), F&O enum literals in `$filter`, create/update/delete as separate verbs (no upsert),
`$batch` with atomic change sets, and F&O's error bodies (ODataLib texts for payload and query
errors, X++ Infolog texts for duplicate keys and missing records).

All protocol work happens in `FinOpsService.handle` (plain Python, also used for the inner
requests of `$batch`); the Starlette layer only moves bytes. Each response reports its request
kind and record count to the guard in `x-sandbox-kind` / `x-sandbox-records`.

Status codes that no Microsoft source pins (apis.md B2, "UNCONFIRMED"): a duplicate POST answers
500 (community-observed inside `$batch`; used for top-level requests too), PATCH/DELETE of a
missing key 400, GET of a missing key 404.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from starlette.applications import Starlette

from sandbox import odatapath
from sandbox.dataverse.app import Reply, dumps, parse_prefer
from sandbox.finops.store import (
    COMPANY_KEY,
    ENTITY_NS,
    DuplicateKey,
    EntityInfo,
    EntityTable,
    FinOpsStore,
    KeyTuple,
    MissingKey,
)
from sandbox.finops.validation import (
    NOT_FOUND_FOR_UPDATE,
    FinOpsError,
    Validator,
    odata_error,
    xpp_error,
)
from sandbox.multipart import (
    BatchRequest,
    ChangeSet,
    MultipartError,
    PartResponse,
    build_batch_response,
    count_operations,
    parse_batch,
    relative_path,
    resolve_content_ids,
)
from sandbox.odataasgi import odata_app
from sandbox.odataquery import ODataQueryError, OrderKey, compile_filter, parse_orderby, parse_select

__all__ = ["FinOpsService", "Reply", "build_finops_app"]

_log = logging.getLogger(__name__)

JSON_TYPE = "application/json; odata.metadata=minimal"
PAGE_SIZE = 10000  # F&O's maximum (and default) server-driven page size [F-odata]
MAX_BATCH = 5000  # "A batch can contain up to 5000 operations" [F-spl]
DUPLICATE_STATUS = 500  # X++ "The record already exists" (community-observed, UNCONFIRMED)
NOT_FOUND_STATUS = 400  # "No resources were found when selecting for update." (community, UNCONFIRMED)


@dataclass
class Req:
    """A request as the service sees it: path relative to the service root, decoded query."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    root: str
    prefer: dict[str, str | None]

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise odata_error("The request body is not valid JSON.") from exc


# --------------------------------------------------------------------------------------- URL keys


def split_resource(path: str) -> tuple[str, str | None, str]:
    """`set(key)/rest` → (set, key text, rest), with this service's error for a broken key."""
    try:
        return odatapath.split_resource(path)
    except odatapath.PathSyntaxError as exc:
        raise odata_error(str(exc)) from None


_KEY_TOKEN_RE = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*)?"
    r"(?P<value>'(?:[^']|'')*'"
    r"|[A-Za-z_][A-Za-z0-9_.]*'(?:[^']|'')*'"
    r"|\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?"
    r"|-?\d+(?:\.\d+)?|true|false)\s*(?:,|$)"
)


def _key_literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if "'" in text:  # enum literal Microsoft.Dynamics.DataEntities.NoYes'Yes'
        quote_at = text.index("'")
        return text[quote_at + 1 : -1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if "T" in text:
        return text
    return float(text) if "." in text else int(text)


def format_key(info: EntityInfo, row: Mapping[str, Any]) -> str:
    """`dataAreaId='usmf',CustomerAccount='C1'` for a row (quotes doubled, URL-safe)."""
    parts = []
    for name in info.keys:
        value = row.get(name)
        edm = str(info.properties.get(name, {}).get("type", "Edm.String"))
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float) or edm == "Edm.DateTimeOffset":
            text = str(value)
        elif edm.startswith(ENTITY_NS):
            text = f"{edm}'{str(value).replace(chr(39), chr(39) * 2)}'"
        else:
            text = "'" + str(value).replace("'", "''") + "'"
        parts.append(f"{name}={quote(text, safe=chr(39) + '=:@$-_.~!*,+')}")
    return ",".join(parts)


def _qs(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='$-')}={quote(v, safe=chr(39) + '(),$=/:@-')}" for k, v in params)


def _int_option(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise odata_error(
            f"Invalid value '{raw}' for {name} query option found. The {name} query option requires a "
            "non-negative integer value."
        )
    return value


class _Rollback(Exception):
    """Raised inside a change set to undo it, carrying the failing reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


# ------------------------------------------------------------------------------------------ service


class FinOpsService:
    """The `/data/` OData behaviour over a `FinOpsStore`."""

    def __init__(
        self,
        store: FinOpsStore,
        base_path: str = "/data",
        *,
        page_size: int = PAGE_SIZE,
        default_company: str | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.store = store
        self.base_path = base_path.rstrip("/")
        self.page_size = page_size
        self.default_company = (default_company or store.default_company).lower()
        self.validator = Validator(store.enum_types)
        self._templates: dict[str, dict[str, None]] = {
            name: dict.fromkeys(info.properties) for name, info in store.entities.items()
        }
        # (set, scope, $filter, $orderby) → (store version, matching keys in order)
        self._order_cache: dict[tuple[str, str, str, str], tuple[int, list[KeyTuple]]] = {}

    # -------------------------------------------------------------------------- entry point
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        root: str,
    ) -> Reply:
        """Serve one request (`path` relative to the service root and URL-decoded, query decoded,
        `root` the absolute service root used in links)."""
        hdrs = {k.lower(): v for k, v in headers.items()}
        req = Req(
            method.upper(), path, dict(query), hdrs, body, root.rstrip("/"), parse_prefer(hdrs.get("prefer"))
        )
        try:
            reply = self._route(req)
        except FinOpsError as err:
            reply = self.error(err)
        except ODataQueryError as err:
            reply = self.error(odata_error(err.message))
        except MultipartError as err:
            reply = self.error(odata_error(err.message), kind="batch")
        except Exception:
            # A sandbox bug must not look like a protocol answer, but must not kill a $batch either.
            _log.exception("F&O stand-in failed on %s %s", method, path)
            reply = self.error(FinOpsError(500, "An error has occurred.", inner="Sandbox internal error."))
        reply.headers.setdefault("OData-Version", "4.0")
        reply.headers["x-sandbox-kind"] = reply.kind
        reply.headers["x-sandbox-records"] = str(reply.records)
        return reply

    def error(self, err: FinOpsError, kind: str = "single") -> Reply:
        return Reply(
            err.status,
            {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"},
            dumps(err.body()),
            kind=kind,
        )

    def _json(self, status: int, payload: Any, *, kind: str, records: int = 0, **headers: str) -> Reply:
        hdrs = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
        hdrs.update(headers)
        return Reply(status, hdrs, dumps(payload), kind=kind, records=records)

    def _route(self, req: Req) -> Reply:
        name, key, rest = split_resource(req.path)
        if name == "$batch" and key is None and not rest:
            if req.method != "POST":
                raise odata_error("The $batch endpoint only accepts POST.", 405)
            return self.batch(req)
        if name == "$metadata" and key is None:
            return self.metadata()
        if name == "" and key is None and not rest:
            sets = [{"name": s, "kind": "EntitySet", "url": s} for s in self.store.entities]
            return self._json(
                200, {"@odata.context": f"{req.root}/$metadata", "value": sets}, kind="metadata"
            )
        info = self.store.entities.get(name)
        if info is None:
            raise odata_error(
                f"No HTTP resource was found that matches the request URI '{req.root}/{name}'.", 404
            )
        table = self.store.table(name)
        if key is None:
            if rest == "$count" and req.method == "GET":
                keys = self._matching(req, table)
                return Reply(200, {"Content-Type": "text/plain"}, str(len(keys)).encode(), "read", 0)
            if rest:
                raise odata_error(f"Resource not found for the segment '{rest}'.", 404)
            if req.method == "GET":
                return self.read_collection(req, table)
            if req.method == "POST":
                return self.create(req, table)
            raise odata_error(f"The HTTP method '{req.method}' is not allowed on an entity set.", 405)
        key_values = self.parse_key(key, info)
        if rest:
            raise odata_error(f"The sandbox does not support the segment '{rest}'.", 400)
        if req.method == "GET":
            return self.read_single(req, table, key_values)
        if req.method in ("PATCH", "PUT"):
            return self.update(req, table, key_values)
        if req.method == "DELETE":
            return self.delete(req, table, key_values)
        raise odata_error(f"The HTTP method '{req.method}' is not allowed on an entity.", 405)

    # -------------------------------------------------------------------------- keys
    def parse_key(self, text: str, info: EntityInfo) -> dict[str, Any]:
        """The text between the parentheses of a key URL → {key property: value}, all keys given."""
        bad = odata_error(
            f"The number of keys specified in the URI does not match number of key properties for the "
            f"resource '{info.full_type}'."
        )
        pairs: dict[str, Any] = {}
        stripped = text.strip()
        pos = 0
        while pos < len(stripped):
            m = _KEY_TOKEN_RE.match(stripped, pos)
            if m is None or m.end() == pos:
                raise odata_error(f"Bad Request - Error in query syntax: '({text})'.")
            prop = m.group("name")
            if prop is None:
                if len(info.keys) != 1 or pairs:
                    raise bad
                prop = info.keys[0]
            pairs[prop] = _key_literal(m.group("value"))
            pos = m.end()
        if set(pairs) != set(info.keys):
            raise bad
        out: dict[str, Any] = {}
        for prop in info.keys:
            spec = info.properties[prop]
            value = pairs[prop]
            if isinstance(value, int | float) and spec.get("type") == "Edm.String":
                value = str(value)
            out[prop] = self.validator.value(info, prop, spec, value)
        return out

    def key_url(self, req: Req, info: EntityInfo, row: Mapping[str, Any]) -> str:
        return f"{req.root}/{info.name}({format_key(info, row)})"

    # -------------------------------------------------------------------------- projection
    def _columns(self, info: EntityInfo, select: str | None) -> list[str] | None:
        if not select:
            return None
        chosen = parse_select(select, properties=info.property_set, entity_type=info.full_type)
        return None if chosen == ["*"] else chosen

    def _project(self, table: EntityTable, nkey: KeyTuple, cols: list[str] | None) -> dict[str, Any]:
        row = table.rows[nkey]
        etag = table.etag(nkey)
        if cols is None:
            return {"@odata.etag": etag, **self._templates[table.info.name], **row}
        out: dict[str, Any] = {"@odata.etag": etag}
        get = row.get
        out.update(zip(cols, map(get, cols), strict=True))
        return out

    # -------------------------------------------------------------------------- reads
    def _scope(self, req: Req) -> str | None:
        """None = every company (`cross-company=true`), else the caller's default company."""
        flag = req.query.get("cross-company", "").strip().lower()
        if flag not in ("", "true", "false"):
            raise odata_error(f"The value '{flag}' of the cross-company query option is not a boolean.")
        return None if flag == "true" else self.default_company

    def _matching(self, req: Req, table: EntityTable) -> list[KeyTuple]:
        """Keys of the rows in scope that pass `$filter`, in `$orderby` order (key order breaks ties).

        Cached per query until the next write, so that following the nextLinks of a 200,000-row read
        neither re-filters nor re-sorts the world for each page.
        """
        info = table.info
        q = req.query
        scope = self._scope(req)
        filter_text = q.get("$filter", "")
        orderby_text = q.get("$orderby", "")
        filt = (
            compile_filter(
                filter_text,
                dialect="finops",
                properties=info.property_set,
                entity_type=info.full_type,
                enum_types=self.store.enum_types,
            )
            if filter_text
            else None
        )
        orderby: list[OrderKey] = (
            parse_orderby(orderby_text, properties=info.property_set, entity_type=info.full_type)
            if orderby_text
            else []
        )
        with self.store.lock:
            keys = table.sorted_keys()
            lo, hi = table.company_range(scope)
            company_eq = filt.equalities.get(COMPANY_KEY) if filt is not None else None
            if isinstance(company_eq, str) and info.per_company:
                # `cross-company=true&$filter=dataAreaId eq 'x' and ...` (the client's per-company
                # read): answer from that company's slice instead of scanning every company.
                if scope is not None and scope != company_eq.casefold():
                    return []
                lo, hi = table.company_range(company_eq)
            if filt is None and not orderby:
                return keys[lo:hi]
            cache_key = (info.name, scope or "*", filter_text, orderby_text)
            cached = self._order_cache.get(cache_key)
            version = self.store.version
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = table.rows
            if filt is not None:
                pred = filt.predicate
                matching = [k for k in keys[lo:hi] if pred(rows[k])]
            else:
                matching = keys[lo:hi]
            if orderby:
                matching = list(matching)
                for okey in reversed(orderby):
                    col = okey.name
                    matching.sort(key=lambda k: _sort_key(rows[k].get(col)), reverse=okey.descending)
            if len(self._order_cache) >= 8:
                self._order_cache.clear()
            self._order_cache[cache_key] = (version, matching)
            return matching

    def read_collection(self, req: Req, table: EntityTable) -> Reply:
        q = req.query
        info = table.info
        if "$expand" in q:
            raise odata_error("The sandbox does not support $expand.")
        select = q.get("$select")
        cols = self._columns(info, select)
        skip = _int_option(q, "$skip") or 0
        top = _int_option(q, "$top")
        want_count = q.get("$count", "").lower() == "true"
        limit = self.page_size if top is None else min(top, self.page_size)
        with self.store.lock:
            keys = self._matching(req, table)
            page = keys[skip : skip + limit]
            value = [self._project(table, k, cols) for k in page]
            total = len(keys)
        payload: dict[str, Any] = {"@odata.context": self._context(req, info, cols)}
        if want_count:
            payload["@odata.count"] = total
        payload["value"] = value
        remaining_top = None if top is None else top - len(page)
        if skip + len(page) < total and len(page) == limit and (remaining_top is None or remaining_top > 0):
            params = [(k, v) for k, v in q.items() if k not in ("$skip", "$top")]
            if remaining_top is not None:
                params.append(("$top", str(remaining_top)))
            params.append(("$skip", str(skip + len(page))))
            payload["@odata.nextLink"] = f"{req.root}/{info.name}?{_qs(params)}"
        return self._json(200, payload, kind="read", records=len(value))

    def _context(self, req: Req, info: EntityInfo, cols: list[str] | None, suffix: str = "") -> str:
        sel = f"({','.join(cols)})" if cols else ""
        return f"{req.root}/$metadata#{info.name}{sel}{suffix}"

    def _not_found(self, info: EntityInfo, key: Mapping[str, Any]) -> FinOpsError:
        # Body text for a GET of a missing key: UNCONFIRMED (no live capture in apis.md).
        return odata_error(f"No resources were found for '{info.name}({format_key(info, key)})'.", 404)

    def read_single(self, req: Req, table: EntityTable, key: Mapping[str, Any]) -> Reply:
        info = table.info
        cols = self._columns(info, req.query.get("$select"))
        with self.store.lock:
            nkey = self.store.key_tuple(info, key)
            if nkey not in table.rows:
                raise self._not_found(info, key)
            out = self._project(table, nkey, cols)
        payload = {"@odata.context": self._context(req, info, cols, "/$entity"), **out}
        return self._json(200, payload, kind="single", records=1, ETag=str(out["@odata.etag"]))

    # -------------------------------------------------------------------------- writes
    def _entity_reply(self, req: Req, table: EntityTable, nkey: KeyTuple, status: int) -> Reply:
        """201/200 with the entity, or 204 when the client asked for `return=minimal`."""
        info = table.info
        url = self.key_url(req, info, table.rows[nkey])
        headers = {"Location": url, "OData-EntityId": url, "ETag": table.etag(nkey)}
        if req.prefer.get("return") == "minimal":
            headers["Preference-Applied"] = "return=minimal"
            return Reply(204, headers, b"", kind="single", records=1)
        payload = {
            "@odata.context": self._context(req, info, None, "/$entity"),
            **self._project(table, nkey, None),
        }
        return self._json(status, payload, kind="single", records=1, **headers)

    def create(self, req: Req, table: EntityTable) -> Reply:
        info = table.info
        data = self.validator.payload(info, req.json())
        if info.per_company and data.get(COMPANY_KEY) is None:
            data[COMPANY_KEY] = self.default_company  # F&O creates in the caller's default company
        for prop in info.keys:
            if data.get(prop) in (None, ""):
                raise odata_error(
                    f"The key property '{prop}' of type '{info.full_type}' must have a value when "
                    f"creating a record."
                )
        with self.store.transaction():
            try:
                self.store.insert(info.name, data)
            except DuplicateKey as dup:
                raise self._duplicate(info, dup.key) from None
            except MissingKey as missing:
                raise odata_error(f"The key property '{missing.prop}' must have a value.") from None
            nkey = self.store.key_tuple(info, data)
            return self._entity_reply(req, table, nkey, 201)

    def _duplicate(self, info: EntityInfo, key: Mapping[str, Any]) -> FinOpsError:
        """The X++ write error of a duplicate create, shaped like the live capture in apis.md B2."""
        described = ", ".join(f"{k}: {v}" for k, v in key.items() if k != COMPANY_KEY)
        company = key.get(COMPANY_KEY)
        where = f" in company {company}" if company else ""
        return xpp_error(
            f"Write failed for table row of type '{info.aot_entity}'. Infolog: Info: Cannot create a record "
            f"in {info.name} ({info.aot_entity}){where}. {described}.\nThe record already exists..",
            DUPLICATE_STATUS,
        )

    def _check_if_match(self, req: Req, table: EntityTable, nkey: KeyTuple) -> None:
        """ETag enforcement on F&O writes is UNCONFIRMED; a stale If-Match answers 412 as OData does."""
        if_match = req.headers.get("if-match")
        if not if_match or if_match.strip() == "*":
            return
        etag = table.etag(nkey)
        if etag not in (part.strip() for part in if_match.split(",")):
            raise odata_error(
                "The ETag value in the request header does not match with the current ETag value of the "
                "object.",
                412,
            )

    def update(self, req: Req, table: EntityTable, key: Mapping[str, Any]) -> Reply:
        """PATCH (and PUT, treated the same: only the properties sent change) → 204."""
        info = table.info
        changes = self.validator.payload(info, req.json())
        with self.store.transaction():
            nkey = self.store.key_tuple(info, key)
            if nkey not in table.rows:
                raise xpp_error(NOT_FOUND_FOR_UPDATE, NOT_FOUND_STATUS)
            self._check_if_match(req, table, nkey)
            for prop in info.keys:
                if prop in changes and self.store.key_tuple(info, {**key, prop: changes[prop]}) != nkey:
                    raise odata_error(
                        f"The key property '{prop}' cannot be changed; it is '{key[prop]}' in the URL."
                    )
            self.store.update(info.name, key, changes)
            if req.prefer.get("return") == "representation":
                return self._entity_reply(req, table, nkey, 200)
            return Reply(204, {"ETag": table.etag(nkey)}, b"", kind="single", records=1)

    def delete(self, req: Req, table: EntityTable, key: Mapping[str, Any]) -> Reply:
        info = table.info
        with self.store.transaction():
            nkey = self.store.key_tuple(info, key)
            if nkey not in table.rows:
                raise xpp_error(NOT_FOUND_FOR_UPDATE, NOT_FOUND_STATUS)
            self._check_if_match(req, table, nkey)
            self.store.delete(info.name, key)
        return Reply(204, {}, b"", kind="single", records=1)

    # -------------------------------------------------------------------------- $batch
    def batch(self, req: Req) -> Reply:
        """`POST /data/$batch`: the batch answers 200 even when parts fail (apis.md B2 [B-ru]);
        a change set is atomic and, when it fails, is answered by its failing response alone.
        Processing stops after the first failed part unless `Prefer: odata.continue-on-error`."""
        parts = parse_batch(req.body, req.headers.get("content-type"))
        operations = count_operations(parts)
        if operations > MAX_BATCH:
            raise odata_error(
                f"The batch contains {operations} operations; a batch can contain up to {MAX_BATCH} "
                "operations."
            )
        continue_on_error = "odata.continue-on-error" in req.prefer
        responses: list[PartResponse | list[PartResponse]] = []
        for part in parts:
            failed: Reply | None
            if isinstance(part, ChangeSet):
                replies = self._run_changeset(req, part)
                failed = next((r for _, r in replies if r.status >= 400), None)
                if failed is not None:
                    responses.append([_as_part(r, cid) for cid, r in replies if r is failed])
                else:
                    responses.append([_as_part(r, cid) for cid, r in replies])
            else:
                reply = self._run_inner(req, part, {})
                failed = reply if reply.status >= 400 else None
                responses.append(_as_part(reply, None))
            if failed is not None and not continue_on_error:
                break
        body, content_type = build_batch_response(responses)
        headers = {"Content-Type": content_type, "OData-Version": "4.0"}
        if continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return Reply(200, headers, body, kind="batch", records=operations)

    def _run_changeset(self, req: Req, cs: ChangeSet) -> list[tuple[str | None, Reply]]:
        done: list[tuple[str | None, Reply]] = []
        ids: dict[str, str] = {}
        try:
            with self.store.transaction():
                for inner in cs.requests:
                    reply = self._run_inner(req, inner, ids)
                    done.append((inner.content_id, reply))
                    if reply.status >= 400:
                        raise _Rollback(reply)
                    location = reply.headers.get("Location") or reply.headers.get("OData-EntityId")
                    if inner.content_id is not None and location:
                        ids[inner.content_id] = location
        except _Rollback:
            pass
        return done

    def _run_inner(self, outer: Req, part: BatchRequest, ids: Mapping[str, str]) -> Reply:
        try:
            url = resolve_content_ids(part.url, ids) if "$" in part.url else part.url
        except MultipartError as err:
            return self._strip(self.error(odata_error(err.message)))
        split = urlsplit(url)
        # strip the service root while still encoded: a decoded key may hold `#` or `?`
        encoded = relative_path(split.path, self.base_path) if split.path.startswith("/") else split.path
        path = unquote(encoded)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = part.headers.to_dict()
        return self._strip(self.handle(part.method, path, query, headers, part.body, outer.root))

    @staticmethod
    def _strip(reply: Reply) -> Reply:
        reply.headers.pop("x-sandbox-kind", None)
        reply.headers.pop("x-sandbox-records", None)
        reply.headers.pop("OData-Version", None)
        return reply

    # -------------------------------------------------------------------------- $metadata
    def metadata(self) -> Reply:
        """A minimal CSDL: entity types with keys and property types, enum types, the container."""
        ns = ENTITY_NS.rstrip(".")
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
            "<edmx:DataServices>",
            f'<Schema Namespace="{ns}" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        ]
        for info in self.store.entities.values():
            out.append(f'<EntityType Name="{xml_escape(info.type_name)}">')
            refs = "".join(f'<PropertyRef Name="{xml_escape(k)}" />' for k in info.keys)
            out.append(f"<Key>{refs}</Key>")
            for name, spec in info.properties.items():
                attrs = f'Name="{xml_escape(name)}" Type="{xml_escape(str(spec.get("type", "Edm.String")))}"'
                if spec.get("nullable") is False:
                    attrs += ' Nullable="false"'
                if isinstance(spec.get("max_length"), int):
                    attrs += f' MaxLength="{spec["max_length"]}"'
                out.append(f"<Property {attrs} />")
            out.append("</EntityType>")
        for enum_name, members in self.store.enum_types.items():
            out.append(f'<EnumType Name="{xml_escape(enum_name)}">')
            out.extend(f'<Member Name="{xml_escape(m)}" Value="{v}" />' for m, v in members.items())
            out.append("</EnumType>")
        out.append('<EntityContainer Name="Container">')
        for info in self.store.entities.values():
            out.append(
                f'<EntitySet Name="{xml_escape(info.name)}" EntityType="{ns}.{xml_escape(info.type_name)}" />'
            )
        out.append("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>")
        return Reply(200, {"Content-Type": "application/xml"}, "".join(out).encode(), kind="metadata")


def _sort_key(value: Any) -> tuple[int, Any]:
    """Nulls first (SQL Server order); strings by case-insensitive collation."""
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


def _as_part(reply: Reply, content_id: str | None) -> PartResponse:
    return PartResponse(reply.status, dict(reply.headers), reply.body or None, content_id=content_id)


def build_finops_app(
    store: FinOpsStore,
    base_path: str = "/data",
    *,
    page_size: int = PAGE_SIZE,
    default_company: str | None = None,
) -> Starlette:
    """The F&O OData stand-in as an ASGI app (served behind the sandbox guard)."""
    service = FinOpsService(store, base_path, page_size=page_size, default_company=default_company)
    return odata_app(service, "finops")
