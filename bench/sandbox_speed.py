"""How fast is the sandbox itself? `python -m bench.sandbox_speed [--size N] [--repeat N] [--json F]`.

The product benchmarks (initial sync of 100k+ accounts) are only meaningful if the stand-ins are
not the bottleneck: a sync reads 5,000-row Dataverse pages and 10,000-row F&O pages, so the
sandbox's own time per page must be small next to the product's. This script seeds a sandbox with
`--size` seeded accounts (`sandbox.datagen.generate`) and as many F&O customers (CustomersV3 rows
built from those accounts, half in `usmf`, half in `demf`), then times full pages over real HTTPS
(MSAL token, TLS verified, latency model off):

- server time = wall time of the request (sent → body fully received, not JSON-decoded) minus the
  median wall time of a trivial request (`$top=1`) on the same keep-alive connection. That removes
  the fixed client/TLS/HTTP cost; what remains is the stand-in's query + serialisation + guard +
  moving the body through loopback TLS. The request log records no durations, hence the baseline.
- "own CPU": CPU time of the sandbox process during the timed requests, per request (psutil);
  unlike wall time it does not grow when the machine is busy with other work.
- "apps alone": CPU per page of the protocol apps called in-process (no guard, HTTP or TLS).
- RSS of this process (which hosts the servers) after seeding, via psutil. The timing client runs
  in a spawned child process so it does not share the servers' GIL.

Exit status 1 when a 5,000-row Dataverse page misses the target (median own time).

Target: < 100 ms own time per 5,000-row Dataverse page (median).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import msal
import psutil
import requests

from sandbox import Sandbox, SandboxConfig, SandboxInfo
from sandbox.datagen import generate
from sandbox.dataverse.app import DataverseService
from sandbox.finops.app import FinOpsService

TARGET_MS = 100.0
DV_PAGE = 5000
FO_ENTITY = "CustomersV3"
# The columns the Accounts template reads from Dataverse (datagen's account row) and writes to F&O.
DV_COLUMNS = (
    "accountid,name,accountnumber,creditlimit,fax,numberofemployees,_transactioncurrencyid_value,"
    "address1_line1,address1_city,address1_stateorprovince,address1_postalcode,address1_country,"
    "description,emailaddress1,telephone1,websiteurl,address2_line1,address2_city,"
    "address2_stateorprovince,address2_postalcode,address2_country,statecode,statuscode"
)
FO_COLUMNS = (
    "dataAreaId,CustomerAccount,OrganizationName,CustomerGroupId,SalesCurrencyCode,CreditLimit,"
    "AddressStreet,AddressCity,AddressState,AddressZipCode,AddressCountryRegionId,PrimaryContactEmail,"
    "PrimaryContactPhone,PrimaryContactURL,PrimaryContactFax"
)
_COUNTRY_ISO = {
    "United States": "USA",
    "Canada": "CAN",
    "United Kingdom": "GBR",
    "Germany": "DEU",
    "France": "FRA",
}


@dataclass
class Result:
    """One timed scenario: server-time statistics in milliseconds, plus the page's rows and bytes."""

    name: str
    rows: int
    bytes: int
    wall_median_ms: float
    server_median_ms: float
    server_p95_ms: float
    server_cpu_ms: float
    target_ms: float | None

    @property
    def verdict(self) -> str:
        if self.target_ms is None:
            return ""
        return "ok" if self.server_median_ms < self.target_ms else "SLOW"


def fo_customers(
    accounts: Iterable[Mapping[str, Any]], companies: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    """F&O customers shaped from the seeded accounts (what the Accounts template would have written),
    spread round-robin over `companies` so the default-company page is a real slice."""
    currencies = ("USD", "EUR", "GBP", "CAD")
    for i, acc in enumerate(accounts):
        yield {
            "dataAreaId": companies[i % len(companies)],
            "CustomerAccount": acc["accountnumber"],
            "OrganizationName": acc["name"],
            "CustomerGroupId": ("10", "20", "30", "40")[i % 4],
            "SalesCurrencyCode": currencies[i % 4],
            "CreditLimit": acc["creditlimit"],
            "AddressStreet": acc["address1_line1"],
            "AddressCity": acc["address1_city"],
            "AddressState": acc["address1_stateorprovince"] or "",
            "AddressZipCode": acc["address1_postalcode"],
            "AddressCountryRegionId": _COUNTRY_ISO.get(acc["address1_country"] or "", "USA"),
            "PrimaryContactEmail": acc["emailaddress1"],
            "PrimaryContactPhone": acc["telephone1"],
            "PrimaryContactURL": acc["websiteurl"],
            "PrimaryContactFax": acc["fax"] or "",
        }


def _token(sb: Sandbox, url: str) -> str:
    """Client-credentials token from MSAL's ConfidentialClientApplication against the Entra stand-in.

    MSAL's requests session would let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override its `verify`,
    so it gets a session that ignores the environment and trusts only the sandbox CA.
    """
    info = sb.info
    session = requests.Session()
    session.trust_env = False
    session.verify = info.ca_file
    app = msal.ConfidentialClientApplication(
        info.client_id,
        client_credential=info.client_secret,
        authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False,
        instance_discovery=False,
        http_client=session,
    )
    with session:
        result = app.acquire_token_for_client(scopes=[f"{url}/.default"])
    if "access_token" not in result:
        raise RuntimeError(f"no token from the Entra stand-in: {result.get('error_description')}")
    return str(result["access_token"])


def _wall(client: httpx.Client, url: str, headers: Mapping[str, str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    resp = client.get(url, headers=dict(headers))
    elapsed = time.perf_counter() - started
    if resp.status_code != 200:
        raise RuntimeError(f"GET {url} answered {resp.status_code}: {resp.text[:300]}")
    return elapsed, resp


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _cpu_s(server: psutil.Process) -> float:
    times = server.cpu_times()
    return float(times.user + times.system)


def time_page(
    server: psutil.Process,
    client: httpx.Client,
    name: str,
    url: str,
    headers: Mapping[str, str],
    baseline_s: float,
    repeat: int,
    target_ms: float | None,
) -> Result:
    """Warm up twice, then time `repeat` identical requests; the first response gives rows/bytes.

    Besides wall-minus-baseline, the server process's CPU time over the timed requests is read
    (psutil): on a loaded machine wall time mostly measures waiting for a core, CPU time does not.
    """
    _, resp = _wall(client, url, headers)
    rows = len(resp.json()["value"])
    _wall(client, url, headers)
    cpu_before = _cpu_s(server)
    walls = [_wall(client, url, headers)[0] for _ in range(repeat)]
    cpu_ms = (_cpu_s(server) - cpu_before) / repeat * 1000
    own = [max(0.0, w - baseline_s) * 1000 for w in walls]
    return Result(
        name=name,
        rows=rows,
        bytes=len(resp.content),
        wall_median_ms=statistics.median(walls) * 1000,
        server_median_ms=statistics.median(own),
        server_p95_ms=_p95(own),
        server_cpu_ms=cpu_ms,
        target_ms=target_ms,
    )


def baseline(client: httpx.Client, url: str, repeat: int) -> float:
    for _ in range(3):
        _wall(client, url, {})
    return statistics.median(_wall(client, url, {})[0] for _ in range(max(repeat, 15)))


def follow(client: httpx.Client, url: str, headers: Mapping[str, str], pages: int) -> str:
    """The nextLink reached after `pages` pages (to time a page deep into the result)."""
    for _ in range(pages):
        _, resp = _wall(client, url, headers)
        url = resp.json()["@odata.nextLink"]
    return url


def measure(
    server_pid: int, info: SandboxInfo, dv_token: str, fo_token: str, repeat: int, fo_columns: int
) -> dict[str, Any]:
    """All timed scenarios; runs in a child process (see `run`). Returns results and baselines."""
    server = psutil.Process(server_pid)
    results: list[Result] = []
    facts: dict[str, float] = {}

    def page(
        client: httpx.Client,
        name: str,
        url: str,
        headers: Mapping[str, str],
        base: float,
        target: float | None = None,
        times: int = repeat,
    ) -> None:
        results.append(time_page(server, client, name, url, headers, base, times, target))

    dv_headers = {
        "Authorization": f"Bearer {dv_token}",
        "Accept": "application/json",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        "If-None-Match": "null",
    }
    dv_root = info.dataverse_url + "/api/data/v9.2/"
    with httpx.Client(base_url=dv_root, headers=dv_headers, verify=info.ca_file, timeout=120) as dv:
        base = baseline(dv, "accounts?$select=name&$top=1", repeat)
        facts["dv_baseline_ms"] = base * 1000
        plain = {"Prefer": f"odata.maxpagesize={DV_PAGE}"}
        tracked = {"Prefer": f"odata.track-changes,odata.maxpagesize={DV_PAGE}"}
        select = f"accounts?$select={DV_COLUMNS}"
        page(dv, "Dataverse plain read, 5,000 rows (template columns)", select, plain, base, TARGET_MS)
        page(
            dv,
            "Dataverse plain read, page 11 (skiptoken)",
            follow(dv, select, plain, 10),
            plain,
            base,
            TARGET_MS,
        )
        page(dv, "Dataverse tracked read, first 5,000 rows", select, tracked, base, TARGET_MS)
        page(dv, "Dataverse tracked read, page 11", follow(dv, select, tracked, 10), tracked, base, TARGET_MS)
        page(dv, "Dataverse plain read, 5,000 rows (all columns)", "accounts", plain, base)

    fo_headers = {"Authorization": f"Bearer {fo_token}", "Accept": "application/json"}
    fo_root = info.finops_url + "/data/"
    with httpx.Client(base_url=fo_root, headers=fo_headers, verify=info.ca_file, timeout=120) as fo:
        base = baseline(fo, f"{FO_ENTITY}?$select=CustomerAccount&$top=1", repeat)
        facts["fo_baseline_ms"] = base * 1000
        select = f"{FO_ENTITY}?$select={FO_COLUMNS}"
        cross = f"{select}&cross-company=true"
        page(fo, "F&O 10,000 rows, default company (15 columns)", select, {}, base)
        page(fo, "F&O 10,000 rows, cross-company", cross, {}, base)
        page(fo, "F&O cross-company page 6 ($skip=50000)", follow(fo, cross, {}, 5), {}, base)
        page(fo, f"F&O 10,000 rows, all {fo_columns} columns", FO_ENTITY, {}, base, times=max(3, repeat // 3))
    return {"results": results, "facts": facts}


def _cpu_per_call_ms(call: Callable[[], Any], repeat: int) -> float:
    call()
    call()
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) / repeat * 1000


def app_only(sb: Sandbox, repeat: int) -> dict[str, float]:
    """CPU per page of the protocol apps alone (query, projection, JSON; no guard, HTTP or TLS),
    called in-process on the same stores: splits "own CPU" into app and transport."""
    dv = DataverseService(sb.dataverse)
    fo = FinOpsService(sb.finops)
    dv_root, fo_root = "https://sandbox/api/data/v9.2", "https://sandbox/data"
    query = {"$select": DV_COLUMNS}

    def dv_page(prefer: str) -> Callable[[], Any]:
        headers = {"prefer": prefer}
        return lambda: dv.handle("GET", "accounts", query=query, headers=headers, body=b"", root=dv_root)

    return {
        "dv_app_plain_cpu_ms": _cpu_per_call_ms(dv_page(f"odata.maxpagesize={DV_PAGE}"), repeat),
        "dv_app_tracked_cpu_ms": _cpu_per_call_ms(
            dv_page(f"odata.track-changes,odata.maxpagesize={DV_PAGE}"), repeat
        ),
        "fo_app_cpu_ms": _cpu_per_call_ms(
            lambda: fo.handle("GET", FO_ENTITY, {"$select": FO_COLUMNS}, {}, b"", fo_root), repeat
        ),
    }


def run(size: int, repeat: int, seed: int) -> tuple[list[Result], dict[str, float]]:
    """Seed a sandbox in this process, then time it from a spawned child process.

    The servers run in threads of this process; a client in the same interpreter would fight them
    for the GIL (TLS decryption and body reads would count as "server time"), so the client that
    times the requests is a separate process, as the product's Function host is.
    """
    proc = psutil.Process()
    gc.collect()
    facts: dict[str, float] = {"rss_start_mb": proc.memory_info().rss / 2**20, "accounts": size}
    with Sandbox(SandboxConfig(seed=seed)) as sb:
        started = time.perf_counter()
        dataset = generate(size=size, seed=seed, templates=("accounts",))
        sb.load(dataset)
        rows = fo_customers(dataset.dataverse["accounts"], ("usmf", "demf"))
        facts["fo_customers"] = sb.finops.load_rows(FO_ENTITY, rows)
        del dataset, rows
        gc.collect()
        facts["seed_s"] = time.perf_counter() - started
        facts["rss_seeded_mb"] = proc.memory_info().rss / 2**20

        info = sb.info
        tokens = _token(sb, info.dataverse_url), _token(sb, info.finops_url)
        columns = len(sb.finops.entities[FO_ENTITY].properties)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            measured = pool.submit(measure, os.getpid(), info, *tokens, repeat, columns).result()
        facts["rss_after_reads_mb"] = proc.memory_info().rss / 2**20
        facts.update(app_only(sb, repeat))
    facts.update(measured["facts"])
    return list(measured["results"]), facts


def render(results: list[Result], facts: Mapping[str, float]) -> str:
    head = (
        f"{'scenario':<52} {'rows':>6} {'MB':>6} {'wall med':>9} {'own med':>8} {'own p95':>8} "
        f"{'own CPU':>8}  target"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        target = f"<{r.target_ms:.0f} {r.verdict}" if r.target_ms is not None else ""
        lines.append(
            f"{r.name:<52} {r.rows:>6} {r.bytes / 2**20:>6.2f} {r.wall_median_ms:>7.1f}ms "
            f"{r.server_median_ms:>6.1f}ms {r.server_p95_ms:>6.1f}ms {r.server_cpu_ms:>6.1f}ms  {target}"
        )
    lines.append("")
    lines.append(
        f"seeded {int(facts['accounts']):,} accounts + {int(facts['fo_customers']):,} F&O customers in "
        f"{facts['seed_s']:.1f} s; RSS {facts['rss_start_mb']:.0f} MB at start, "
        f"{facts['rss_seeded_mb']:.0f} MB after seeding, {facts['rss_after_reads_mb']:.0f} MB after the reads"
    )
    lines.append(
        f"apps alone (in-process, no guard/HTTP/TLS), CPU per page: Dataverse plain "
        f"{facts['dv_app_plain_cpu_ms']:.1f} ms, tracked {facts['dv_app_tracked_cpu_ms']:.1f} ms; "
        f"F&O 10,000 rows {facts['fo_app_cpu_ms']:.1f} ms"
    )
    lines.append(
        f"baseline (trivial $top=1 request): Dataverse {facts['dv_baseline_ms']:.1f} ms, "
        f"F&O {facts['fo_baseline_ms']:.1f} ms"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sandbox_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=100_000, help="seeded accounts (and F&O customers)")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per scenario")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.size < 11 * DV_PAGE:
        parser.error(f"--size must be at least {11 * DV_PAGE} (page 11 of the Dataverse read is timed)")
    results, facts = run(args.size, args.repeat, args.seed)
    print(render(results, facts))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": [asdict(r) for r in results], "facts": facts}, indent=2))
    slow = [r for r in results if r.verdict == "SLOW"]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
