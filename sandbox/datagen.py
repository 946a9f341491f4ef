"""Deterministic Contoso-style sample data for the sandbox, at any size, for every P2C template.

The demo, the integration tests and the benchmarks all need the same kind of data: realistic rows
in the real column names of each service, reproducible from a seed (so a failing test can be
re-run exactly), and cheap to produce at 200,000 rows. Everything here is plain dicts in the shape
the sandbox stores accept (`sandbox.Sandbox.load`): Dataverse rows keyed by entity set with lookups
given as `_<column>_value` GUIDs, F&O rows keyed by entity set with `dataAreaId` on company-specific
sets. Every column name comes from the schema catalogue (`sandbox/schemas/*.json`) and every value
fits it (the unit tests check each row against the catalogue).

What exists where, as in an environment where P2C is about to be switched on:

* Reference data on both sides first (currencies, units and the "Default Unit" group, one price list
  per currency, business units; per company: customer groups, payment/delivery terms, delivery
  modes, sites "1"/"2" and warehouses incl. "13" - the templates' defaults - plus LegalEntities and
  Companies rows).
* Sales masters: accounts (`size`), contacts (about `size`: active customers, contact persons of an
  account, and a few that are neither), quotes and Sales-created orders with 1-5 lines (about
  `size`/4 each) in the states the templates select, plus a share that is not selected (drafts,
  write-in products, won/lost quotes, cancelled orders).
* F&O masters: `SellableReleasedProducts` (max(10, `size`/2) per company, same product numbers in
  every company, priced in the company's currency), F&O-created orders (`CDSSalesOrderHeaders` /
  `CDSSalesOrderLines`, about `size`/4 over all companies, mostly confirmed or later) and, for the
  invoiced ones whose customer came from Sales, externally maintained invoices dated over the last
  10 days before `as_of`.
* Records that already exist on both sides: the products at even positions of the product stream
  (numbers ending in an odd number, `D00001`/`S00003`/..., see `ProductMaster.synced`) that are not
  sales-stopped are also emitted as Sales `products` "as if already synced" by the products template
  from the first company (same `productnumber`, name, price and currency,
  `msdynce_ismaintainedexternally` true, Active, unit group "Default Unit") with a price list item in
  that currency's price list; Sales quote and order lines only use those (or write-in products).
  Nothing else is pre-synced: no F&O customers exist yet (the accounts template creates them), so
  F&O orders name Sales account numbers as their customers as they will exist after that template
  ran (all accounts go to one company, so demf orders name them too).

Each entity has its own random stream (seeded by entity, seed and company), so asking for fewer
templates or companies does not change the rows of the others, and the accounts rows stay exactly
those of the first version of this module (tests compare against them).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sandbox.catalogue import finops_enum_members, finops_enum_name, load_catalogue_files

CURRENCIES: tuple[tuple[str, str, str], ...] = (
    ("USD", "US Dollar", "$"),
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("CAD", "Canadian Dollar", "$"),
)
CUSTOMER_GROUPS: tuple[tuple[str, str], ...] = (
    ("10", "Wholesale customers"),
    ("20", "Major customers"),
    ("30", "Retail customers"),
    ("40", "Internet customers"),
)
# (Sales country text, state/province choices, cities, postal code shape, currency)
REGIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str, str], ...] = (
    (
        "United States",
        ("WA", "NY", "CA", "TX", "IL"),
        ("Redmond", "Seattle", "New York", "Austin"),
        "#####",
        "USD",
    ),
    ("Canada", ("ON", "BC", "QC"), ("Toronto", "Vancouver", "Montréal"), "A#A #A#", "CAD"),
    ("United Kingdom", ("", "ENG"), ("London", "Manchester", "Reading"), "AA# #AA", "GBP"),
    ("Germany", ("BY", "BE", "HH"), ("München", "Berlin", "Hamburg"), "#####", "EUR"),
    ("France", ("", "IDF"), ("Paris", "Lyon"), "#####", "EUR"),
    ("", ("",), ("Springfield",), "#####", "USD"),  # blank country: the template defaults it to USA
)
NAME_PARTS_A = (
    "Contoso",
    "Fabrikam",
    "Adventure Works",
    "Northwind",
    "Tailspin",
    "Litware",
    "Proseware",
    "Wingtip",
    "Alpine Ski",
    "Coho",
    "Fourth Coffee",
    "Lucerne",
    "Margie's",
    "Relecloud",
    "Trey Research",
    "Woodgrove",
    "Humongous",
    "Blue Yonder",
    "Graphic Design",
    "Wide World",
)
NAME_PARTS_B = (
    "Pharmaceuticals",
    "Bikes",
    "Traders",
    "Airlines",
    "Insurance",
    "Electronics",
    "Consulting",
    "Toys",
    "House",
    "Winery",
    "Coffee",
    "Publishing",
    "Travel",
    "Importers",
    "Bank",
    "Foods",
)
STREETS = ("Main St", "1st Ave", "Oak Rd", "Pine Lane", "Market St", "Lake View Dr", "Hauptstraße", "High St")


@dataclass
class Dataset:
    """Rows for both services, by entity set, ready for `Sandbox.load`."""

    dataverse: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    finops: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {f"dataverse.{k}": len(v) for k, v in self.dataverse.items()}
        out.update({f"finops.{k}": len(v) for k, v in self.finops.items()})
        return out


class IdSource:
    """Reproducible GUIDs: the same seed always yields the same ids, in the same order."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _pattern(rng: random.Random, shape: str) -> str:
    out = []
    for ch in shape:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "A":
            out.append(chr(ord("A") + rng.randrange(26)))
        else:
            out.append(ch)
    return "".join(out)


def account_number(index: int, rng: random.Random) -> str:
    """The P2C solution's auto-number shape: `ACC-` + sequence + `-` + 6 characters (A–Z, 0–9)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    suffix = "".join(alphabet[rng.randrange(len(alphabet))] for _ in range(6))
    return f"ACC-{1000 + index:05d}-{suffix}"


def currency_rows(ids: IdSource) -> list[dict[str, Any]]:
    return [
        {
            "transactioncurrencyid": ids(),
            "isocurrencycode": code,
            "currencyname": name,
            "currencysymbol": symbol,
            "currencyprecision": 2,
            "exchangerate": 1.0,
        }
        for code, name, symbol in CURRENCIES
    ]


def account_row(
    index: int, rng: random.Random, ids: IdSource, currency_ids: dict[str, str]
) -> dict[str, Any]:
    """One Sales account with every column the Accounts template reads, some left blank as in life."""
    country, states, cities, postal, currency = REGIONS[rng.randrange(len(REGIONS))]
    name = (
        f"{NAME_PARTS_A[index % len(NAME_PARTS_A)]} {NAME_PARTS_B[(index // 7) % len(NAME_PARTS_B)]} {index}"
    )
    domain = name.lower().replace(" ", "").replace("'", "")[:24]
    has_delivery = rng.random() < 0.4
    row: dict[str, Any] = {
        "accountid": ids(),
        "name": name,
        "accountnumber": account_number(index, rng),
        "creditlimit": float(rng.choice((0, 5000, 10000, 25000, 50000, 125000.5))),
        "fax": _pattern(rng, "+1 425 555 ####") if rng.random() < 0.3 else None,
        "numberofemployees": rng.choice((None, 5, 25, 120, 800, 12000)),
        "_transactioncurrencyid_value": currency_ids[currency],
        "address1_line1": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
        "address1_city": rng.choice(cities),
        "address1_stateorprovince": rng.choice(states) or None,
        "address1_postalcode": _pattern(rng, postal),
        "address1_country": country or None,
        "description": "Key account" if rng.random() < 0.2 else None,
        "emailaddress1": f"info@{domain}.example.com",
        "telephone1": _pattern(rng, "+1 206 555 ####"),
        "websiteurl": f"https://www.{domain}.example.com",
        "address2_line1": f"{rng.randrange(1, 999)} Dock Rd" if has_delivery else None,
        "address2_city": rng.choice(cities) if has_delivery else None,
        "address2_stateorprovince": (rng.choice(states) or None) if has_delivery else None,
        "address2_postalcode": _pattern(rng, postal) if has_delivery else None,
        "address2_country": (country or None) if has_delivery else None,
        "statecode": 0,
        "statuscode": 1,
    }
    return row


def iter_accounts(
    count: int, seed: int, currency_ids: dict[str, str], start: int = 0
) -> Iterator[dict[str, Any]]:
    """Accounts streamed one by one (benchmarks seed 200,000 without building a list first)."""
    rng = random.Random(f"accounts:{seed}:{start}")
    ids = IdSource(rng)
    for index in range(start, start + count):
        yield account_row(index, rng, ids, currency_ids)


#: Template names (as in `shared.templates.TEMPLATE_NAMES`) whose source data `generate` can emit.
TEMPLATE_NAMES: tuple[str, ...] = (
    "products",
    "accounts",
    "contacts",
    "contacts-to-customers",
    "quotes",
    "orders-to-fno",
    "orders-to-sales",
    "invoices",
)
# Data groups each template needs: its own source rows plus the rows those refer to.
_TEMPLATE_GROUPS: dict[str, frozenset[str]] = {
    "products": frozenset({"products"}),
    "accounts": frozenset({"accounts"}),
    "contacts": frozenset({"accounts", "contacts"}),
    "contacts-to-customers": frozenset({"accounts", "contacts"}),
    "quotes": frozenset({"accounts", "contacts", "products", "quotes"}),
    "orders-to-fno": frozenset({"accounts", "contacts", "products", "sales_orders"}),
    "orders-to-sales": frozenset({"accounts", "products", "fo_orders"}),
    "invoices": frozenset({"accounts", "products", "fo_orders", "invoices"}),
}

#: F&O entity sets the generator fills with order/invoice documents (names exactly as in finops.json).
FO_ORDER_HEADERS = "CDSSalesOrderHeaders"
FO_ORDER_LINES = "CDSSalesOrderLines"
FO_INVOICE_HEADERS = "ExternallyMaintainedCustomerSalesInvoiceHeaders"
FO_INVOICE_LINES = "ExternallyMaintainedCustomerSalesInvoiceLines"

#: Lookup target annotation the Dataverse store honours for polymorphic (Customer) lookups.
LOOKUP_TARGET = "@Microsoft.Dynamics.CRM.lookuplogicalname"


class CompanyProfile(NamedTuple):
    """What differs between legal entities: name, accounting currency, language, country, tax."""

    name: str
    currency: str
    language: str
    country: str
    business_unit: str
    tax_rate: float


COMPANY_PROFILES: dict[str, CompanyProfile] = {
    "usmf": CompanyProfile("Contoso Entertainment System USA", "USD", "en-us", "US", "Contoso US", 0.08),
    "demf": CompanyProfile("Contoso Entertainment System Germany", "EUR", "de", "DE", "Contoso DE", 0.19),
    "gbsi": CompanyProfile("Contoso Entertainment System UK", "GBP", "en-gb", "GB", "Contoso UK", 0.2),
    "camf": CompanyProfile("Contoso Entertainment System Canada", "CAD", "en-ca", "CA", "Contoso CA", 0.13),
}
# Units of currency per US dollar: product prices are kept comparable across companies.
EXCHANGE_PER_USD: dict[str, float] = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CAD": 1.36}


class Unit(NamedTuple):
    """An F&O unit of measure and the Sales unit (in the "Default Unit" group) it is mapped to."""

    symbol: str
    description: str
    unit_class: str
    decimals: int
    sales_name: str


UNITS: tuple[Unit, ...] = (
    Unit("ea", "Each", "Quantity", 0, "Each"),
    Unit("pcs", "Pieces", "Quantity", 0, "Piece"),
    Unit("box", "Box", "Quantity", 0, "Box"),
    Unit("kg", "Kilogram", "Mass", 2, "Kilogram"),
    Unit("h", "Hours", "Time", 2, "Hour"),
)
#: The value map the templates with lines need: F&O unit symbol -> Sales unit name.
SALES_UNIT_NAMES: dict[str, str] = {unit.symbol: unit.sales_name for unit in UNITS}
UNIT_DECIMALS: dict[str, int] = {unit.symbol: unit.decimals for unit in UNITS}
#: Sales unit group of every product (the products template's default "Default unit").
UNIT_GROUP = "Default Unit"
BASE_UNIT = "Primary Unit"
#: One Sales price list per currency; USD is the name the order/invoice templates default to.
PRICE_LIST_NAMES: dict[str, str] = {
    "USD": "CRM Service USA (sample)",
    "EUR": "CRM Service Europe",
    "GBP": "CRM Service UK",
    "CAD": "CRM Service Canada",
}
#: F&O site and warehouse the accounts template defaults to (SITEID "1", WAREHOUSEID "13").
DEFAULT_SITE = "1"
DEFAULT_WAREHOUSE = "13"
SITES: tuple[tuple[str, str], ...] = (("1", "Central site"), ("2", "East site"))
WAREHOUSES: tuple[tuple[str, str, str], ...] = (
    ("11", "Main warehouse", "1"),
    ("12", "Overflow warehouse", "1"),
    ("13", "Retail distribution", "1"),
    ("21", "East hub", "2"),
)
PAYMENT_TERMS: tuple[tuple[str, str, int], ...] = (
    ("Net10", "Net 10 days", 10),
    ("Net30", "Net 30 days", 30),
    ("Net45", "Net 45 days", 45),
    ("COD", "Cash on delivery", 0),
)
DELIVERY_TERMS: tuple[tuple[str, str], ...] = (
    ("FOB", "Free on board"),
    ("CIF", "Cost, insurance and freight"),
    ("EXW", "Ex works"),
    ("DDP", "Delivered duty paid"),
)
DELIVERY_MODES: tuple[tuple[str, str], ...] = (("10", "Truck"), ("20", "Air"), ("30", "Parcel"))

# (family, F&O product type, unit symbol, lowest and highest USD price)
PRODUCT_FAMILIES: tuple[tuple[str, str, str, int, int], ...] = (
    ("Speaker", "Item", "ea", 80, 900),
    ("Television", "Item", "ea", 300, 3000),
    ("Projector", "Item", "ea", 400, 2500),
    ("Receiver", "Item", "ea", 150, 1200),
    ("HDMI cable", "Item", "pcs", 5, 60),
    ("Wall mount", "Item", "pcs", 20, 200),
    ("Headphones", "Item", "ea", 30, 450),
    ("Cleaning kit", "Item", "box", 8, 40),
    ("Speaker wire", "Item", "kg", 12, 90),
    ("Installation service", "Service", "h", 60, 150),
    ("Calibration service", "Service", "h", 80, 200),
)
PRODUCT_LINES = ("Standard", "Premium", "Compact", "Pro", "Home", "Studio", "Outdoor", "Slim")
FIRST_NAMES = (
    "Alex", "Maria", "John", "Yvonne", "Kenji", "Fatima", "Lukas", "Chloe", "Omar", "Priya",
    "Sven", "Ana", "David", "Mei", "Jonas", "Sara", "Pedro", "Hannah", "Ivan", "Nora",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Müller", "Johnson", "Tanaka", "Khan", "Schmidt", "Martin", "Ali", "Patel",
    "Larsen", "Silva", "Brown", "Chen", "Weber", "Nilsson", "Santos", "Becker", "Petrov", "Berg",
)  # fmt: skip
MIDDLE_NAMES = ("J.", "Marie", "Lee", "K.", "Ann")
JOB_TITLES = ("Purchasing manager", "CEO", "Buyer", "Office manager", "IT director", "Sales lead")
DEPARTMENTS = ("Purchasing", "Management", "Finance", "IT", "Operations")
WRITE_IN_PRODUCTS = ("Custom cabling work", "Site survey", "Extended warranty", "Rush delivery")

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_FO_NULL_DATETIME = "1900-01-01T00:00:00Z"  # what F&O returns for an empty UtcDateTime


# ------------------------------------------------------------------------------------ helpers


def _suffix(rng: random.Random) -> str:
    return "".join(_ALPHABET[rng.randrange(36)] for _ in range(6))


def _money(value: float) -> float:
    return round(value + 0.0, 2)


def _fo_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_of(as_of: datetime | None) -> datetime:
    """Midnight UTC of `as_of` (default: today), so rows only change once a day, not every second."""
    moment = as_of if as_of is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def company_profile(company: str) -> CompanyProfile:
    """The profile of a known Contoso company; others get a USD/en-us profile named after the id."""
    known = COMPANY_PROFILES.get(company)
    if known is not None:
        return known
    label = company.upper()
    return CompanyProfile(f"Contoso {label}", "USD", "en-us", "US", f"Contoso {label}", 0.08)


def _check_companies(companies: Iterable[str]) -> tuple[str, ...]:
    out = tuple(str(c).lower() for c in companies)
    if not out:
        raise ValueError("at least one company is needed")
    for company in out:
        if not 1 <= len(company) <= 4 or not company.isalnum():
            raise ValueError(f"{company!r} is not an F&O company id (1-4 letters/digits)")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate company in {out}")
    return out


def _groups(templates: Collection[str] | None) -> frozenset[str]:
    names = TEMPLATE_NAMES if templates is None else tuple(templates)
    out: set[str] = set()
    for name in names:
        if name not in _TEMPLATE_GROUPS:
            raise ValueError(f"unknown template {name!r}; known templates: {', '.join(TEMPLATE_NAMES)}")
        out |= _TEMPLATE_GROUPS[name]
    return frozenset(out)


def _type_default(raw: Mapping[str, Any], kind: str) -> Any:
    enum = finops_enum_name(kind)
    if enum is not None:
        members = finops_enum_members(raw, enum)
        zero = [name for name, value in members.items() if value == 0]
        return zero[0] if zero else next(iter(members))
    return {
        "Edm.Int32": 0,
        "Edm.Int64": 0,
        "Edm.Decimal": 0.0,
        "Edm.Double": 0.0,
        "Edm.Boolean": False,
        "Edm.Date": "1900-01-01",
        "Edm.DateTimeOffset": _FO_NULL_DATETIME,
        "Edm.Guid": "00000000-0000-0000-0000-000000000000",
    }.get(kind, "")


def finops_defaults(raw: Mapping[str, Any], entity_set: str) -> dict[str, Any]:
    """Values F&O itself returns for the non-nullable, non-key properties a row leaves out.

    Real F&O never returns null for those (0, "", 1900-01-01, the enum's 0 member), so seed rows
    carry them too and readers see the same shape as in production.
    """
    spec = raw["entity_sets"][entity_set]
    keys = set(spec.get("keys", ()))
    return {
        name: _type_default(raw, str(prop.get("type", "Edm.String")))
        for name, prop in spec["properties"].items()
        if not prop.get("nullable", True) and name not in keys
    }


# ------------------------------------------------------------------------------ reference data


def finops_reference_rows(companies: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Configuration an F&O environment has before integration, per company where F&O keeps it so."""
    rows: dict[str, list[dict[str, Any]]] = {
        "LegalEntities": [],
        "Companies": [],
        "CustomerGroups": [],
        "Currencies": [],
        "UnitsOfMeasure": [],
        "PaymentTerms": [],
        "DeliveryTerms": [],
        "DeliveryModesV2": [],
        "OperationalSitesV2": [],
        "Warehouses": [],
    }
    for company in companies:
        profile = company_profile(company)
        rows["LegalEntities"].append(
            {
                "LegalEntityId": company,
                "Name": profile.name,
                "LanguageId": profile.language,
                "AddressCountryRegionISOCode": profile.country,
                "CompanyType": "LegalEntity",
            }
        )
        rows["Companies"].append(
            {
                "DataArea": company,
                "Name": profile.name,
                "KnownAs": profile.business_unit,
                "LanguageId": profile.language,
                "PartyNumber": f"{company.upper()}-000001",
            }
        )
        rows["CustomerGroups"] += [
            {"dataAreaId": company, "CustomerGroupId": group, "Description": description}
            for group, description in CUSTOMER_GROUPS
        ]
        rows["PaymentTerms"] += [
            {
                "dataAreaId": company,
                "Name": name,
                "Description": description,
                "NumberOfDays": days,
                "NumberOfMonths": 0,
                "AdditionalMonthsForCutoffDate": 0,
                "CutoffDayOfMonth": 0,
                "IsCashPayment": "Yes" if days == 0 else "No",
                "IsDefaultPaymentTerm": "Yes" if name == "Net30" else "No",
            }
            for name, description, days in PAYMENT_TERMS
        ]
        rows["DeliveryTerms"] += [
            {"dataAreaId": company, "TermsCode": code, "TermsDescription": description}
            for code, description in DELIVERY_TERMS
        ]
        rows["DeliveryModesV2"] += [
            {"dataAreaId": company, "ModeCode": code, "ModeDescription": description, "ModeDisplayOrder": i}
            for i, (code, description) in enumerate(DELIVERY_MODES)
        ]
        rows["OperationalSitesV2"] += [
            {
                "dataAreaId": company,
                "SiteId": site,
                "SiteName": name,
                "PrimaryAddressCountryRegionId": profile.country,
                "PrimaryAddressLatitude": 0.0,
                "PrimaryAddressLongitude": 0.0,
            }
            for site, name in SITES
        ]
        rows["Warehouses"] += [
            {
                "dataAreaId": company,
                "WarehouseId": warehouse,
                "WarehouseName": name,
                "OperationalSiteId": site,
                "WarehouseType": "Standard",
                "MaximumBatchPickingListQuantity": 0,
                "MaximumPickingListLineQuantity": 0,
                "PrimaryAddressLatitude": 0.0,
                "PrimaryAddressLongitude": 0.0,
                "RetailStoreQuantityAllocationReplenismentRuleWeight": 0.0,
            }
            for warehouse, name, site in WAREHOUSES
        ]
    rows["Currencies"] = [
        {
            "CurrencyCode": code,
            "Name": name,
            "Symbol": symbol,
            "DecimalsCount_MX": 2,
            "GeneralRoundingRule": 0.01,
            "RoundingRuleFixedAssetDepreciation": 0.01,
            "RoundingRulePrices": 0.01,
            "RoundingRulePurchaseOrders": 0.01,
            "RoundingRuleSalesOrders": 0.01,
        }
        for code, name, symbol in CURRENCIES
    ]
    rows["UnitsOfMeasure"] = [
        {
            "UnitSymbol": unit.symbol,
            "UnitDescription": unit.description,
            "UnitClass": unit.unit_class,
            "DecimalPrecision": unit.decimals,
            "IsBaseUnit": "Yes" if unit.symbol in ("ea", "kg", "h") else "No",
            "SystemOfUnits": "Metric" if unit.unit_class == "Mass" else "None",
        }
        for unit in UNITS
    ]
    return rows


@dataclass
class SalesReference:
    """Ids of the Sales reference rows other rows point at (currency, unit, price list by name)."""

    currency_ids: dict[str, str]
    uom_ids: dict[str, str]
    uom_schedule_id: str
    pricelevel_ids: dict[str, str]
    rows: dict[str, list[dict[str, Any]]]


def sales_reference_rows(
    ids: IdSource, currencies: list[dict[str, Any]], companies: tuple[str, ...]
) -> SalesReference:
    """Units, the "Default Unit" group, one price list per currency and the business units."""
    currency_ids = {row["isocurrencycode"]: row["transactioncurrencyid"] for row in currencies}
    schedule_id = ids()
    base_id = ids()
    uoms = [
        {
            "uomid": base_id,
            "name": BASE_UNIT,
            "quantity": 1.0,
            "_uomscheduleid_value": schedule_id,
            "_baseuom_value": base_id,
            "isschedulebaseuom": True,
        }
    ]
    uom_ids = {BASE_UNIT: base_id}
    for unit in UNITS:
        uom_ids[unit.symbol] = ids()
        uoms.append(
            {
                "uomid": uom_ids[unit.symbol],
                "name": unit.sales_name,
                "quantity": 1.0,
                "_uomscheduleid_value": schedule_id,
                "_baseuom_value": base_id,
                "isschedulebaseuom": False,
            }
        )
    schedules = [
        {
            "uomscheduleid": schedule_id,
            "name": UNIT_GROUP,
            "baseuomname": BASE_UNIT,
            "description": "Units of F&O products (products template default group)",
            "statecode": 0,
            "statuscode": 1,
        }
    ]
    pricelevels = []
    pricelevel_ids: dict[str, str] = {}
    for code, _name, _symbol in CURRENCIES:
        pricelevel_ids[code] = ids()
        pricelevels.append(
            {
                "pricelevelid": pricelevel_ids[code],
                "name": PRICE_LIST_NAMES[code],
                "description": f"Prices of externally maintained products in {code}",
                "_transactioncurrencyid_value": currency_ids[code],
                "begindate": "2020-01-01",
                "statecode": 0,
                "statuscode": 100001,
            }
        )
    root_id = ids()
    units = [{"businessunitid": root_id, "name": "Contoso", "divisionname": "Contoso"}]
    for company in companies:
        units.append(
            {
                "businessunitid": ids(),
                "name": company_profile(company).business_unit,
                "divisionname": company.upper(),
                "_parentbusinessunitid_value": root_id,
            }
        )
    return SalesReference(
        currency_ids=currency_ids,
        uom_ids=uom_ids,
        uom_schedule_id=schedule_id,
        pricelevel_ids=pricelevel_ids,
        rows={"uomschedules": schedules, "uoms": uoms, "pricelevels": pricelevels, "businessunits": units},
    )


# ------------------------------------------------------------------------------------ products


class ProductMaster(NamedTuple):
    """A product as released to every company; prices in USD, converted per company currency."""

    ordinal: int
    number: str
    name: str
    description: str
    product_type: str
    unit: str
    price_usd: float
    cost_usd: float
    stocked: bool
    sales_stopped: bool

    def price(self, currency: str) -> float:
        return _money(self.price_usd * EXCHANGE_PER_USD.get(currency, 1.0))

    def cost(self, currency: str) -> float:
        return _money(self.cost_usd * EXCHANGE_PER_USD.get(currency, 1.0))

    @property
    def synced(self) -> bool:
        """Already in Sales (emitted as a Sales product): even index and still sellable."""
        return self.ordinal % 2 == 0 and not self.sales_stopped


def product_count(size: int) -> int:
    """Products per company for `size` accounts: size/2, at least 10."""
    return max(10, size // 2)


def iter_product_masters(count: int, seed: int, start: int = 0) -> Iterator[ProductMaster]:
    """The product master data, one stream shared by every company."""
    rng = random.Random(f"products:{seed}:{start}")
    for index in range(start, start + count):
        family, product_type, unit, low, high = PRODUCT_FAMILIES[rng.randrange(len(PRODUCT_FAMILIES))]
        line = PRODUCT_LINES[rng.randrange(len(PRODUCT_LINES))]
        service = product_type == "Service"
        price = _money(rng.uniform(low, high))
        yield ProductMaster(
            ordinal=index,
            number=f"{'S' if service else 'D'}{index + 1:05d}",
            name=f"{line} {family} {index + 1}",
            description=f"{line} {family.lower()} for home and business installations",
            product_type=product_type,
            unit=unit,
            price_usd=price,
            cost_usd=_money(price * rng.uniform(0.45, 0.75)),
            stocked=not service and rng.random() < 0.9,
            sales_stopped=rng.random() < 0.03,
        )


def iter_sellable_products(
    masters: Iterable[ProductMaster], company: str, defaults: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """F&O `SellableReleasedProducts` rows of one company (the products template's source)."""
    currency = company_profile(company).currency
    base = dict(defaults or {})
    for m in masters:
        decimals = UNIT_DECIMALS[m.unit]
        fs_type = "Inventory" if m.stocked else "NonInventory"
        if m.product_type == "Service":
            fs_type = "Service"
        yield {
            **base,
            "dataAreaId": company,
            "ProductNumber": m.number,
            "ProductName": m.name,
            "ProductDescription": m.description,
            "ProductType": m.product_type,
            "IsStockedProduct": "Yes" if m.stocked else "No",
            "IsSalesStopped": "Yes" if m.sales_stopped else "No",
            "SalesUnitSymbol": m.unit,
            "InventoryUnitSymbol": m.unit,
            "SalesUnitDecimalPrecision": decimals,
            "InventoryUnitDecimalPrecision": decimals,
            "SalesPrice": m.price(currency),
            "UnitCost": m.cost(currency),
            "CurrencyCode": currency,
            "FieldServiceProductType": fs_type,
        }


class SalesProductRef(NamedTuple):
    """What a Sales quote/order line needs of a product already in Sales."""

    id: str
    number: str
    name: str
    price: float
    uom_id: str
    unit: str


def iter_synced_sales_products(
    masters: Iterable[ProductMaster], seed: int, currency: str, reference: SalesReference
) -> Iterator[tuple[dict[str, Any], dict[str, Any], SalesProductRef]]:
    """(Sales `products` row, `productpricelevels` row, ref) of the masters already synced to Sales.

    Values are what the products template writes from the first company's F&O row, and the price
    list item is what the P2C plugin adds (first price list of the product's currency).
    """
    rng = random.Random(f"sales-products:{seed}")
    ids = IdSource(rng)
    currency_id = reference.currency_ids[currency]
    pricelevel_id = reference.pricelevel_ids[currency]
    for m in masters:
        if not m.synced:
            continue
        product_id = ids()
        price = m.price(currency)
        uom_id = reference.uom_ids[m.unit]
        product = {
            "productid": product_id,
            "productnumber": m.number,
            "name": m.name,
            "description": m.description,
            "price": price,
            "currentcost": m.cost(currency),
            "_defaultuomid_value": uom_id,
            "_defaultuomscheduleid_value": reference.uom_schedule_id,
            "_transactioncurrencyid_value": currency_id,
            "_pricelevelid_value": pricelevel_id,
            "isstockitem": m.stocked,
            "producttypecode": 3 if m.product_type == "Service" else 1,
            "productstructure": 1,
            "quantitydecimal": UNIT_DECIMALS[m.unit],
            "msdynce_ismaintainedexternally": True,
            "statecode": 0,
            "statuscode": 1,
        }
        item = {
            "productpricelevelid": ids(),
            "_pricelevelid_value": pricelevel_id,
            "_productid_value": product_id,
            "_uomid_value": uom_id,
            "_uomscheduleid_value": reference.uom_schedule_id,
            "_transactioncurrencyid_value": currency_id,
            "amount": price,
            "pricingmethodcode": 1,
            "quantitysellingcode": 1 if UNIT_DECIMALS[m.unit] else 2,
        }
        yield product, item, SalesProductRef(product_id, m.number, m.name, price, uom_id, m.unit)


# ------------------------------------------------------------------------------------ contacts


def contact_row(
    index: int,
    rng: random.Random,
    ids: IdSource,
    accounts: Sequence[Mapping[str, Any]],
    currency_ids: Mapping[str, str],
) -> dict[str, Any]:
    """One Sales contact: an active customer, a contact person of an account, or (few) neither."""
    roll = rng.random()
    active_customer = roll < 0.35
    contact_person = not active_customer and roll < 0.9 and len(accounts) > 0
    first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
    last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
    middle = MIDDLE_NAMES[rng.randrange(len(MIDDLE_NAMES))] if rng.random() < 0.2 else None
    country, states, cities, postal, currency = REGIONS[rng.randrange(len(REGIONS))]
    mail_name = f"{first}.{last}".lower().replace("ü", "ue")
    inactive = rng.random() < 0.05
    row: dict[str, Any] = {
        "contactid": ids(),
        "msdynce_contactnumber": f"CON-{1000 + index:05d}-{_suffix(rng)}",
        "firstname": first,
        "middlename": middle,
        "lastname": last,
        "fullname": " ".join(p for p in (first, middle, last) if p),
        "emailaddress1": f"{mail_name}{index}@example.com",
        "telephone1": _pattern(rng, "+1 425 555 ####"),
        "fax": _pattern(rng, "+1 425 555 ####") if rng.random() < 0.1 else None,
        "websiteurl": f"https://www.{last.lower().replace('ü', 'ue')}{index}.example.com"
        if rng.random() < 0.1
        else None,
        "jobtitle": JOB_TITLES[rng.randrange(len(JOB_TITLES))] if contact_person else None,
        "department": DEPARTMENTS[rng.randrange(len(DEPARTMENTS))] if contact_person else None,
        "description": "Met at the Contoso trade fair" if rng.random() < 0.1 else None,
        "gendercode": rng.choice((1, 2, None)),
        "familystatuscode": rng.choice((1, 2, 3, 4, None)),
        "donotemail": rng.random() < 0.1,
        "governmentid": _pattern(rng, "###-##-####") if active_customer and rng.random() < 0.3 else None,
        "creditlimit": float(rng.choice((0, 1000, 2500, 5000))) if active_customer else None,
        "_transactioncurrencyid_value": currency_ids[currency],
        "address1_line1": f"{rng.randrange(1, 9999)} {STREETS[rng.randrange(len(STREETS))]}",
        "address1_city": cities[rng.randrange(len(cities))],
        "address1_stateorprovince": states[rng.randrange(len(states))] or None,
        "address1_postalcode": _pattern(rng, postal),
        "address1_country": country or None,
        "msdynce_isactivecustomer": active_customer,
        "msdynce_iscompanyanaccount": contact_person,
        "_parentcustomerid_value": None,
        "statecode": 1 if inactive else 0,
        "statuscode": 2 if inactive else 1,
    }
    if contact_person:
        row["_parentcustomerid_value"] = accounts[rng.randrange(len(accounts))]["accountid"]
        row["_parentcustomerid_value" + LOOKUP_TARGET] = "account"
    return row


def iter_contacts(
    count: int,
    seed: int,
    accounts: Sequence[Mapping[str, Any]],
    currency_ids: Mapping[str, str],
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    """Contacts streamed one by one; parents are drawn from `accounts` (rows or id-bearing dicts)."""
    rng = random.Random(f"contacts:{seed}:{start}")
    ids = IdSource(rng)
    for index in range(start, start + count):
        yield contact_row(index, rng, ids, accounts, currency_ids)


# --------------------------------------------------------------------- Sales quotes and orders


class CustomerRef(NamedTuple):
    """A Sales customer (account or active-customer contact) as quotes and orders refer to it."""

    id: str
    logical: str
    number: str
    name: str
    line1: str | None
    city: str | None
    state: str | None
    postalcode: str | None
    country: str | None


def customer_refs(
    accounts: Iterable[Mapping[str, Any]], contacts: Iterable[Mapping[str, Any]] = ()
) -> list[CustomerRef]:
    """Accounts plus the contacts flagged as active customers (the contacts-to-customers ones)."""
    out = [
        CustomerRef(
            a["accountid"],
            "account",
            a["accountnumber"],
            a["name"],
            a.get("address1_line1"),
            a.get("address1_city"),
            a.get("address1_stateorprovince"),
            a.get("address1_postalcode"),
            a.get("address1_country"),
        )
        for a in accounts
    ]
    out += [
        CustomerRef(
            c["contactid"],
            "contact",
            c["msdynce_contactnumber"],
            c["fullname"],
            c.get("address1_line1"),
            c.get("address1_city"),
            c.get("address1_stateorprovince"),
            c.get("address1_postalcode"),
            c.get("address1_country"),
        )
        for c in contacts
        if c.get("msdynce_isactivecustomer") and c.get("statecode") == 0
    ]
    return out


@dataclass(frozen=True)
class SalesCatalogue:
    """The Sales side of selling: synced products, the currency and price list quotes/orders use."""

    products: Sequence[SalesProductRef]
    currency_id: str
    pricelevel_id: str


def _pick_customer(rng: random.Random, customers: Sequence[CustomerRef]) -> CustomerRef:
    return customers[rng.randrange(len(customers))]


def _sales_lines(
    rng: random.Random, catalogue: SalesCatalogue, write_in: bool
) -> list[tuple[SalesProductRef | None, float, float, float]]:
    """(product or None for a write-in, quantity, price per unit, manual discount) for 1-5 lines."""
    lines: list[tuple[SalesProductRef | None, float, float, float]] = []
    count = 1 + rng.randrange(5)
    write_in_at = rng.randrange(count) if write_in else -1
    for n in range(count):
        if n == write_in_at:
            price = _money(rng.uniform(50, 500))
            lines.append((None, 1.0, price, 0.0))
            continue
        product = catalogue.products[rng.randrange(len(catalogue.products))]
        if UNIT_DECIMALS[product.unit]:
            quantity = round(rng.uniform(0.5, 40), 2)
        else:
            quantity = float(rng.choice((1, 1, 2, 3, 4, 5, 10, 12, 20)))
        discount = _money(quantity * product.price * rng.choice((0, 0, 0, 0.05, 0.1)))
        lines.append((product, quantity, product.price, discount))
    return lines


def _sales_detail(
    rng: random.Random,
    line: tuple[SalesProductRef | None, float, float, float],
    sequence: int,
    catalogue: SalesCatalogue,
) -> dict[str, Any]:
    product, quantity, price, discount = line
    base = _money(quantity * price)
    row: dict[str, Any] = {
        "quantity": quantity,
        "priceperunit": price,
        "manualdiscountamount": discount,
        "baseamount": base,
        "extendedamount": _money(base - discount),
        "tax": 0.0,
        "sequencenumber": sequence,
        "lineitemnumber": sequence,
        "_transactioncurrencyid_value": catalogue.currency_id,
        "ispriceoverridden": False,
        "msdynce_ismaintainedexternally": False,
    }
    if product is None:
        row["isproductoverridden"] = True
        row["productdescription"] = WRITE_IN_PRODUCTS[rng.randrange(len(WRITE_IN_PRODUCTS))]
        row["_productid_value"] = None
        row["_uomid_value"] = None
    else:
        row["isproductoverridden"] = False
        row["_productid_value"] = product.id
        row["_uomid_value"] = product.uom_id
    return row


def _address(prefix: str, customer: CustomerRef) -> dict[str, Any]:
    return {
        f"{prefix}_line1": customer.line1,
        f"{prefix}_city": customer.city,
        f"{prefix}_stateorprovince": customer.state,
        f"{prefix}_postalcode": customer.postalcode,
        f"{prefix}_country": customer.country,
    }


# (statecode, statuscode, share): Active "In Progress" and Submitted are what the quotes template
# selects (together with only externally maintained products); Draft, Won and Lost are not.
QUOTE_STATES: tuple[tuple[int, int, float], ...] = (
    (1, 2, 0.55),
    (3, 647390000, 0.15),
    (0, 1, 0.20),
    (2, 4, 0.05),
    (3, 5, 0.05),
)


def _pick_weighted(rng: random.Random, choices: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    roll = rng.random()
    for choice in choices:
        roll -= choice[-1]
        if roll < 0:
            return choice
    return choices[-1]


def iter_quote_documents(
    count: int,
    seed: int,
    customers: Sequence[CustomerRef],
    catalogue: SalesCatalogue,
    start: int = 0,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(quote, quotedetails) pairs: headers and their 1-5 lines are produced together so totals
    and the "external products only" flags agree."""
    if not customers or not catalogue.products:
        return
    rng = random.Random(f"quotes:{seed}:{start}")
    ids = IdSource(rng)
    for index in range(start, start + count):
        customer = _pick_customer(rng, customers)
        write_in = rng.random() < 0.1
        state, status, _share = _pick_weighted(rng, QUOTE_STATES)
        if write_in:
            state, status = 0, 1  # a quote with write-in products cannot be activated in P2C
        lines = _sales_lines(rng, catalogue, write_in)
        quote_id = ids()
        details = []
        for n, line in enumerate(lines, start=1):
            detail = {
                "quotedetailid": ids(),
                "_quoteid_value": quote_id,
                **_sales_detail(rng, line, n, catalogue),
                "msdynce_quotehasexternalmaintainedproductsonly": not write_in,
                "msdynce_quoterevisionnumber": 0,
            }
            details.append(detail)
        line_total = _money(sum(d["extendedamount"] for d in details))
        header = {
            "quoteid": quote_id,
            "quotenumber": f"QUO-{1000 + index:05d}-{_suffix(rng)}",
            "name": f"Quote {index + 1} for {customer.name}"[:300],
            "_customerid_value": customer.id,
            "_customerid_value" + LOOKUP_TARGET: customer.logical,
            "_transactioncurrencyid_value": catalogue.currency_id,
            "_pricelevelid_value": catalogue.pricelevel_id,
            **_address("shipto", customer),
            **_address("billto", customer),
            "billto_line2": f"Suite {rng.randrange(1, 500)}" if rng.random() < 0.3 else None,
            "totallineitemamount": line_total,
            "totallineitemdiscountamount": _money(sum(d["manualdiscountamount"] for d in details)),
            "discountamount": 0.0,
            "freightamount": 0.0,
            "totaltax": 0.0,
            "totalamountlessfreight": line_total,
            "totalamount": line_total,
            "statecode": state,
            "statuscode": status,
            "msdynce_hasexternallymaintainedproductsonly": not write_in,
            "msdynce_ismaintainedexternally": False,
        }
        yield header, details


# Sales-created orders: (msdynce_processingstatus, statecode, statuscode, share). Active = activated
# (submitted, what the orders-to-fno template selects); Draft and Cancelled are not selected.
SALES_ORDER_STATES: tuple[tuple[int, int, int, float], ...] = (
    (647390000, 0, 1, 0.6),
    (647390011, 0, 1, 0.32),
    (647390010, 2, 4, 0.08),
)


def iter_sales_order_documents(
    count: int,
    seed: int,
    customers: Sequence[CustomerRef],
    catalogue: SalesCatalogue,
    start: int = 0,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(salesorder, salesorderdetails) pairs of orders created in Sales (not yet in F&O)."""
    if not customers or not catalogue.products:
        return
    rng = random.Random(f"salesorders:{seed}:{start}")
    ids = IdSource(rng)
    for index in range(start, start + count):
        customer = _pick_customer(rng, customers)
        write_in = rng.random() < 0.1
        processing, state, status, _share = _pick_weighted(rng, SALES_ORDER_STATES)
        if write_in:
            processing, state, status = 647390011, 0, 1  # cannot be activated: stays Draft
        submitted = processing == 647390000
        number = f"ORD-{1000 + index:05d}-{_suffix(rng)}"
        lines = _sales_lines(rng, catalogue, write_in)
        order_id = ids()
        details = []
        for n, line in enumerate(lines, start=1):
            details.append(
                {
                    "salesorderdetailid": ids(),
                    "_salesorderid_value": order_id,
                    **_sales_detail(rng, line, n, catalogue),
                    "msdynce_orderhasexternalmaintainedproductsonly": not write_in,
                    "msdynce_orderissubmitted": submitted,
                    "msdynce_ordernumber": number,
                    "msdynce_ismisctax": False,
                }
            )
        line_total = _money(sum(d["extendedamount"] for d in details))
        header = {
            "salesorderid": order_id,
            "ordernumber": number,
            "name": f"Order {index + 1} for {customer.name}"[:300],
            "_customerid_value": customer.id,
            "_customerid_value" + LOOKUP_TARGET: customer.logical,
            "_transactioncurrencyid_value": catalogue.currency_id,
            "_pricelevelid_value": catalogue.pricelevel_id,
            **_address("shipto", customer),
            **_address("billto", customer),
            "shipto_line2": f"Dock {rng.randrange(1, 40)}" if rng.random() < 0.3 else None,
            "totallineitemamount": line_total,
            "totallineitemdiscountamount": _money(sum(d["manualdiscountamount"] for d in details)),
            "discountamount": 0.0,
            "freightamount": 0.0,
            "totaltax": 0.0,
            "totalamountlessfreight": line_total,
            "totalamount": line_total,
            "statecode": state,
            "statuscode": status,
            "msdynce_processingstatus": processing,
            "msdynce_hasexternallymaintainedproductsonly": not write_in,
            "msdynce_ismaintainedexternally": False,
            "ispricelocked": False,
        }
        yield header, details


# ------------------------------------------------------------------------ F&O orders, invoices

# (SalesOrderProcessingStatus, SalesStatus, share). Confirmed or later is what the orders-to-sales
# template selects; Active (not confirmed) and work-order origins are not.
FO_ORDER_STATES: tuple[tuple[str, str, float], ...] = (
    ("Active", "Backorder", 0.07),
    ("Confirmed", "Backorder", 0.33),
    ("Picked", "Backorder", 0.05),
    ("PartiallyDelivered", "Backorder", 0.05),
    ("Delivered", "Delivered", 0.15),
    ("PartiallyInvoiced", "Backorder", 0.05),
    ("DeliveredPartiallyInvoiced", "Delivered", 0.03),
    ("Invoiced", "Invoiced", 0.24),
    ("Canceled", "Canceled", 0.03),
)
INVOICED_STATES = frozenset({"Invoiced", "PartiallyInvoiced", "DeliveredPartiallyInvoiced"})


def fo_order_number(company: str, index: int) -> str:
    """F&O order numbers: the company's own sequence, prefixed so they never collide across
    companies or with Sales-created `ORD-` numbers (Sales `ordernumber` is one global key)."""
    return f"{company.upper()}-SO{index + 1:06d}"


def iter_finops_order_documents(
    count: int,
    seed: int,
    company: str,
    customers: Sequence[CustomerRef],
    products: Sequence[ProductMaster],
    as_of: datetime,
    *,
    header_defaults: Mapping[str, Any] | None = None,
    line_defaults: Mapping[str, Any] | None = None,
    start: int = 0,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(CDSSalesOrderHeaders row, CDSSalesOrderLines rows) of orders created in F&O.

    Customers are Sales accounts by number (externally maintained in F&O once the accounts
    template ran); about 8% are F&O-only customers (not externally maintained, not selected).
    """
    sellable = [p for p in products if not p.sales_stopped]
    if not customers or not sellable:
        return
    profile = company_profile(company)
    currency = profile.currency
    rng = random.Random(f"fo-orders:{seed}:{company}:{start}")
    hbase = dict(header_defaults or {})
    lbase = dict(line_defaults or {})
    line_seq = start * 5  # at most 5 lines per order: chunks started at `start` never overlap
    for index in range(start, start + count):
        customer = _pick_customer(rng, customers)
        external = rng.random() >= 0.08
        account = customer.number if external else f"{company.upper()}-C{rng.randrange(1, 999):04d}"
        flag = "Yes" if external else "No"
        processing, sales_status, _share = _pick_weighted(rng, FO_ORDER_STATES)
        origin = "WorkOrderIntegration" if rng.random() < 0.03 else "NotSpecified"
        created = as_of - timedelta(days=10 + rng.randrange(30), minutes=rng.randrange(24 * 60))
        ship = created + timedelta(days=3 + rng.randrange(12))
        receipt = ship + timedelta(days=2)
        confirmed = processing not in ("Active", "Canceled")
        number = fo_order_number(company, index)
        lines: list[dict[str, Any]] = []
        for _ in range(1 + rng.randrange(5)):
            product = sellable[rng.randrange(len(sellable))]
            price = product.price(currency)
            if UNIT_DECIMALS[product.unit]:
                quantity = round(rng.uniform(0.5, 40), 2)
            else:
                quantity = float(rng.choice((1, 1, 2, 3, 4, 5, 10, 12, 20)))
            unit_discount = _money(price * rng.choice((0, 0, 0, 0.05, 0.1)))
            amount = _money(quantity * (price - unit_discount))
            line_seq += 1
            lines.append(
                {
                    **lbase,
                    "dataAreaId": company,
                    "SalesOrderNumber": number,
                    "LineCreationSequenceNumber": line_seq,
                    "ProductNumber": product.number,
                    "ProductName": product.name[:60],
                    "LineDescription": product.name,
                    "OrderedSalesQuantity": quantity,
                    "SalesUnitSymbol": product.unit,
                    "SalesPrice": price,
                    "SalesPriceQuantity": 1.0,
                    "LineDiscountAmount": unit_discount,
                    "TotalDiscountAmount": _money(quantity * unit_discount),
                    "LineAmount": amount,
                    "TotalTaxAmount": _money(amount * profile.tax_rate),
                    "TotalChargesAmount": 0.0,
                    "CurrencyCode": currency,
                    "ShippingSiteId": DEFAULT_SITE,
                    "ShippingWarehouseId": DEFAULT_WAREHOUSE,
                    "DeliveryAddressStreet": customer.line1,
                    "DeliveryAddressCity": customer.city,
                    "DeliveryAddressStateId": (customer.state or "")[:10] or None,
                    "DeliveryAddressZipCode": (customer.postalcode or "")[:10] or None,
                    "DeliveryAddressCountryRegionISOCode": _iso_country(customer.country),
                    "RequestedShippingDate": _fo_datetime(ship),
                    "RequestedReceiptDate": _fo_datetime(receipt),
                    "ConfirmedShippingDate": _fo_datetime(ship) if confirmed else _FO_NULL_DATETIME,
                    "SalesOrderLineStatus": sales_status,
                    "SalesOrderProcessingStatus": processing,
                    "SalesOrderOriginType": origin,
                    "OrderingCustomerIsExternallyMaintained": flag,
                    "InvoiceCustomerIsExternallyMaintained": flag,
                    "AreTotalsCalculated": "Yes",
                    "AreSalesOrderTotalsUpdated": "Yes",
                    "IsLineStopped": "No",
                }
            )
        charges = float(rng.choice((0, 0, 0, 25, 50)))
        header_tax = _money(charges * profile.tax_rate)
        lines_amount = _money(sum(line["LineAmount"] for line in lines))
        lines_tax = _money(sum(line["TotalTaxAmount"] for line in lines))
        totals_updated = rng.random() < 0.9
        header = {
            **hbase,
            "dataAreaId": company,
            "SalesOrderNumber": number,
            "SalesOrderName": customer.name[:60],
            "CustomersOrderReference": f"PO-{rng.randrange(10000, 99999)}",
            "OrderingCustomerAccountNumber": account,
            "InvoiceCustomerAccountNumber": account,
            "OrderingCustomerIsExternallyMaintained": flag,
            "InvoiceCustomerIsExternallyMaintained": flag,
            "CurrencyCode": currency,
            "LanguageId": profile.language,
            "PaymentTermsName": PAYMENT_TERMS[1][0],
            "DeliveryTermsCode": DELIVERY_TERMS[rng.randrange(len(DELIVERY_TERMS))][0],
            "DeliveryModeCode": DELIVERY_MODES[rng.randrange(len(DELIVERY_MODES))][0],
            "DefaultShippingSiteId": DEFAULT_SITE,
            "DefaultShippingWarehouseId": DEFAULT_WAREHOUSE,
            "DeliveryAddressName": customer.name[:60],
            "DeliveryAddressDescription": customer.name[:60],
            "DeliveryAddressStreet": customer.line1,
            "DeliveryAddressStreetNumber": None,
            "DeliveryAddressCity": customer.city,
            "DeliveryAddressStateId": (customer.state or "")[:10] or None,
            "DeliveryAddressZipCode": (customer.postalcode or "")[:10] or None,
            "DeliveryAddressCountryRegionISOCode": _iso_country(customer.country),
            "InvoiceAddressStreet": customer.line1,
            "InvoiceAddressCity": customer.city,
            "InvoiceAddressStateId": (customer.state or "")[:10] or None,
            "InvoiceAddressZipCode": (customer.postalcode or "")[:10] or None,
            "InvoiceAddressCountryRegionISOCode": _iso_country(customer.country),
            "InvoiceAddressCountryRegionId": _iso3_country(customer.country),
            "IsDeliveryAddressOrderSpecific": "No",
            "SalesOrderProcessingStatus": processing,
            "SalesOrderStatus": sales_status,
            "SalesOrderOriginType": origin,
            "AreTotalsUpdated": "Yes" if totals_updated else "No",
            "OrderCreationDateTime": _fo_datetime(created),
            "RequestedShippingDate": _fo_datetime(ship),
            "RequestedReceiptDate": _fo_datetime(receipt),
            "ConfirmedShippingDate": _fo_datetime(ship) if confirmed else _FO_NULL_DATETIME,
            "OrderTotalChargesAmount": charges,
            "OrderHeaderTaxAmount": header_tax,
            "OrderTotalTaxAmount": _money(lines_tax + header_tax),
            "OrderTotalDiscountAmount": _money(sum(line["TotalDiscountAmount"] for line in lines)),
            "TotalDiscountAmount": 0.0,
            "OrderTotalAmount": _money(lines_amount + lines_tax + charges + header_tax),
        }
        yield header, lines


# Sales keeps free-text countries; F&O addresses carry ISO codes (alpha-2) and region ids (alpha-3).
_COUNTRY_CODES: dict[str, tuple[str, str]] = {
    "United States": ("US", "USA"),
    "Canada": ("CA", "CAN"),
    "United Kingdom": ("GB", "GBR"),
    "Germany": ("DE", "DEU"),
    "France": ("FR", "FRA"),
}


def _iso_country(country: str | None) -> str:
    return _COUNTRY_CODES.get(country or "", ("US", "USA"))[0]


def _iso3_country(country: str | None) -> str:
    return _COUNTRY_CODES.get(country or "", ("US", "USA"))[1]


def iter_finops_invoice_documents(
    orders: Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    seed: int,
    company: str,
    as_of: datetime,
    *,
    header_defaults: Mapping[str, Any] | None = None,
    line_defaults: Mapping[str, Any] | None = None,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Externally maintained invoices of the (partially) invoiced orders of Sales customers.

    The entity only shows invoices of externally maintained customers, so orders of F&O-only
    customers get none. Invoice dates fall on the 10 days up to `as_of` (midnight UTC), the window
    the invoices template's date cursor walks. Partially invoiced orders invoice their first lines.
    """
    rng = random.Random(f"fo-invoices:{seed}:{company}")
    hbase = dict(header_defaults or {})
    lbase = dict(line_defaults or {})
    prefix = company.upper()
    serial = 0
    line_seq = 0
    for header, lines in orders:
        if header["SalesOrderProcessingStatus"] not in INVOICED_STATES:
            continue
        if header["InvoiceCustomerIsExternallyMaintained"] != "Yes":
            continue
        full = header["SalesOrderProcessingStatus"] == "Invoiced" or len(lines) == 1
        billed = lines if full else lines[: max(1, len(lines) // 2)]
        serial += 1
        number = f"{prefix}-CIV{serial:06d}"
        voucher = f"{prefix}-ARI{serial:06d}"
        day = as_of - timedelta(days=rng.randrange(10))
        invoice_date = _fo_datetime(day)
        out_lines = []
        for line in billed:
            line_seq += 1
            out_lines.append(
                {
                    **lbase,
                    "dataAreaId": company,
                    "InvoiceNumber": number,
                    "InvoiceDate": invoice_date,
                    "LedgerVoucher": voucher,
                    "LineCreationSequenceNumber": line_seq,
                    "ProductNumber": line["ProductNumber"],
                    "ProductName": line["ProductName"],
                    "InvoicedQuantity": line["OrderedSalesQuantity"],
                    "SalesUnitSymbol": line["SalesUnitSymbol"],
                    "SalesPrice": line["SalesPrice"],
                    "LineTotalDiscountAmount": line["TotalDiscountAmount"],
                    "LineAmount": line["LineAmount"],
                    "LineTotalTaxAmount": line["TotalTaxAmount"],
                    "CurrencyCode": line["CurrencyCode"],
                }
            )
        charges = float(header["OrderTotalChargesAmount"]) if full else 0.0
        tax = _money(sum(line["LineTotalTaxAmount"] for line in out_lines))
        amount = _money(sum(line["LineAmount"] for line in out_lines))
        yield (
            {
                **hbase,
                "dataAreaId": company,
                "InvoiceNumber": number,
                "InvoiceDate": invoice_date,
                "LedgerVoucher": voucher,
                "SalesOrderNumber": header["SalesOrderNumber"],
                "InvoiceCustomerAccountNumber": header["InvoiceCustomerAccountNumber"],
                "CustomersOrderReference": header["CustomersOrderReference"],
                "InvoiceAddressStreet": header["InvoiceAddressStreet"],
                "InvoiceAddressStreetNumber": header["DeliveryAddressStreetNumber"],
                "InvoiceAddressCity": header["InvoiceAddressCity"],
                "InvoiceAddressState": header["InvoiceAddressStateId"],
                "InvoiceAddressZipCode": header["InvoiceAddressZipCode"],
                "InvoiceAddressCountryRegionISOCode": header["InvoiceAddressCountryRegionISOCode"],
                "CurrencyCode": header["CurrencyCode"],
                "TotalChargeAmount": charges,
                "TotalDiscountAmount": _money(sum(line["LineTotalDiscountAmount"] for line in out_lines)),
                "TotalDiscountCustomerGroupCode": 0.0,
                "TotalTaxAmount": tax,
                "TotalInvoiceAmount": _money(amount + tax + charges),
            },
            out_lines,
        )


# ------------------------------------------------------------------------------------ generate


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def generate(
    size: int = 100,
    seed: int = 1,
    *,
    companies: Collection[str] = ("usmf", "demf"),
    templates: Collection[str] | None = None,
    as_of: datetime | None = None,
) -> Dataset:
    """A dataset for `templates` (default: all) with `size` accounts, for `companies`.

    Only the rows the named templates read, plus what those rows point at, are emitted (reference
    data always). `as_of` anchors order and invoice dates (default: today, midnight UTC); pass it
    for rows that are identical across days.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    company_ids = _check_companies(companies)
    groups = _groups(templates)
    anchor = _as_of(as_of)
    _, finops_raw = load_catalogue_files()

    rng = random.Random(f"reference:{seed}")
    ids = IdSource(rng)
    currencies = currency_rows(ids)  # first: the accounts' currency ids must not move
    reference = sales_reference_rows(ids, currencies, company_ids)
    dataset = Dataset()
    dataset.dataverse["transactioncurrencies"] = currencies
    dataset.dataverse.update(reference.rows)
    for entity_set, rows in finops_reference_rows(company_ids).items():
        defaults = finops_defaults(finops_raw, entity_set)
        dataset.finops[entity_set] = [{**defaults, **row} for row in rows]

    accounts: list[dict[str, Any]] = []
    if "accounts" in groups:
        accounts = list(iter_accounts(size, seed, reference.currency_ids))
        dataset.dataverse["accounts"] = accounts
    contacts: list[dict[str, Any]] = []
    if "contacts" in groups:
        contacts = list(iter_contacts(size, seed, accounts, reference.currency_ids))
        dataset.dataverse["contacts"] = contacts

    masters: list[ProductMaster] = []
    synced: list[SalesProductRef] = []
    home_currency = company_profile(company_ids[0]).currency
    if "products" in groups:
        masters = list(iter_product_masters(product_count(size), seed))
        defaults = finops_defaults(finops_raw, "SellableReleasedProducts")
        dataset.finops["SellableReleasedProducts"] = [
            row for company in company_ids for row in iter_sellable_products(masters, company, defaults)
        ]
        products: list[dict[str, Any]] = []
        items: list[dict[str, Any]] = []
        for product, item, ref in iter_synced_sales_products(masters, seed, home_currency, reference):
            products.append(product)
            items.append(item)
            synced.append(ref)
        dataset.dataverse["products"] = products
        dataset.dataverse["productpricelevels"] = items

    customers = customer_refs(accounts, contacts)
    catalogue = SalesCatalogue(
        synced, reference.currency_ids[home_currency], reference.pricelevel_ids[home_currency]
    )
    if "quotes" in groups:
        headers: list[dict[str, Any]] = []
        details: list[dict[str, Any]] = []
        for header, lines in iter_quote_documents(size // 4, seed, customers, catalogue):
            headers.append(header)
            details.extend(lines)
        dataset.dataverse["quotes"] = headers
        dataset.dataverse["quotedetails"] = details
    if "sales_orders" in groups:
        headers, details = [], []
        for header, lines in iter_sales_order_documents(size // 4, seed, customers, catalogue):
            headers.append(header)
            details.extend(lines)
        dataset.dataverse["salesorders"] = headers
        dataset.dataverse["salesorderdetails"] = details

    if "fo_orders" in groups:
        account_customers = customer_refs(accounts)
        order_headers: list[dict[str, Any]] = []
        order_lines: list[dict[str, Any]] = []
        invoice_headers: list[dict[str, Any]] = []
        invoice_lines: list[dict[str, Any]] = []
        hdef = finops_defaults(finops_raw, FO_ORDER_HEADERS)
        ldef = finops_defaults(finops_raw, FO_ORDER_LINES)
        ihdef = finops_defaults(finops_raw, FO_INVOICE_HEADERS)
        ildef = finops_defaults(finops_raw, FO_INVOICE_LINES)
        for company, count in zip(company_ids, _split(size // 4, len(company_ids)), strict=True):
            docs = list(
                iter_finops_order_documents(
                    count,
                    seed,
                    company,
                    account_customers,
                    masters,
                    anchor,
                    header_defaults=hdef,
                    line_defaults=ldef,
                )
            )
            for header, lines in docs:
                order_headers.append(header)
                order_lines.extend(lines)
            if "invoices" in groups:
                for header, lines in iter_finops_invoice_documents(
                    docs, seed, company, anchor, header_defaults=ihdef, line_defaults=ildef
                ):
                    invoice_headers.append(header)
                    invoice_lines.extend(lines)
        dataset.finops[FO_ORDER_HEADERS] = order_headers
        dataset.finops[FO_ORDER_LINES] = order_lines
        if "invoices" in groups:
            dataset.finops[FO_INVOICE_HEADERS] = invoice_headers
            dataset.finops[FO_INVOICE_LINES] = invoice_lines
    return dataset
