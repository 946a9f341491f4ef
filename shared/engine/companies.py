"""Which F&O company a Sales record belongs to (design.md "Companies"; templates.md "Company").

Sales has no company column: a record belongs to the legal entity whose business unit owns it
(`P2C_COMPANIES=usmf=Contoso US,demf=Contoso Europe`). Records owned by a business unit that no
company names go to the default company, so a one-company deployment needs no business units at
all. Each company keeps its own checkpoints and crosswalk; a record is written to exactly one.
"""

from __future__ import annotations

from typing import Any

from shared.mapping import ReferenceMissing, ReferenceResolver
from shared.settings import Settings

OWNING_BUSINESS_UNIT = "_owningbusinessunit_value"


class CompanyRouter:
    """Maps a Sales row to its company id through the owning business unit's name."""

    def __init__(self, settings: Settings, resolver: ReferenceResolver) -> None:
        self.default = settings.default_company
        self.by_unit = {
            c.business_unit.strip().casefold(): c.id for c in settings.companies if c.business_unit
        }
        self.resolver = resolver
        self._cache: dict[str, str] = {}

    @property
    def active(self) -> bool:
        """Routing matters only when some company names a business unit."""
        return bool(self.by_unit)

    def company_of(self, row: dict[str, Any]) -> str:
        unit_id = row.get(OWNING_BUSINESS_UNIT)
        if not self.by_unit or not unit_id:
            return self.default
        key = str(unit_id)
        company = self._cache.get(key)
        if company is None:
            try:
                name = self.resolver.resolve("businessunit", "businessunitid", key, "name")
            except ReferenceMissing:
                name = None
            company = self.by_unit.get(str(name or "").strip().casefold(), self.default)
            self._cache[key] = company
        return company
