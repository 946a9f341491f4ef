"""Composition root: builds the service clients of one run from settings.

Nothing here is cached across runs: each run gets fresh HTTP clients bound to its own time budget
and request metrics, so a run's figures are its own and a stuck connection cannot leak into the
next timer run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.auth import build_auth
from shared.dataverse import DataverseClient
from shared.finops import FinOpsClient
from shared.http import AdaptiveLimiter, RequestMetrics, RetryPolicy, ServiceHttp, TimeBudget, build_client
from shared.settings import Settings


@dataclass
class ServiceClients:
    dataverse: DataverseClient
    finops: FinOpsClient
    metrics: dict[str, RequestMetrics]
    budget: TimeBudget
    _https: list[ServiceHttp] = field(default_factory=list)

    def requests_snapshot(self) -> dict[str, dict[str, int]]:
        return {name: dict(m.snapshot()) for name, m in self.metrics.items()}

    def total(self, counter: str) -> int:
        total = 0
        for snap in self.requests_snapshot().values():
            value = snap.get(counter, 0)
            if isinstance(value, int):
                total += value
        return total

    def close(self) -> None:
        for svc in self._https:
            svc.client.close()


def build_service_clients(settings: Settings, budget: TimeBudget | None = None) -> ServiceClients:
    budget = budget or TimeBudget(settings.run_time_budget_seconds)
    https: list[ServiceHttp] = []
    metrics: dict[str, RequestMetrics] = {}

    def service(name: Literal["dataverse", "finops"], base_url: str, scope: str) -> ServiceHttp:
        auth = build_auth(settings, scope)
        client = build_client(settings, auth, base_url)
        m = RequestMetrics()
        metrics[name] = m
        svc = ServiceHttp(
            client,
            service=name,
            policy=RetryPolicy(max_retries=settings.max_retries),
            budget=budget,
            limiter=AdaptiveLimiter(settings.max_concurrency),
            metrics=m,
        )
        https.append(svc)
        return svc

    dv_http = service("dataverse", settings.dataverse_api_url, settings.dataverse_scope)
    fo_http = service("finops", settings.finops_data_url, settings.finops_scope)
    return ServiceClients(
        dataverse=DataverseClient(
            dv_http,
            settings.dataverse_api_url,
            page_size=settings.dataverse_page_size,
            bulk_size=settings.dataverse_bulk_size,
        ),
        finops=FinOpsClient(
            fo_http,
            settings.finops_data_url,
            page_size=settings.finops_page_size,
            batch_size=settings.finops_batch_size,
        ),
        metrics=metrics,
        budget=budget,
        _https=https,
    )
