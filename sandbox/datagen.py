"""Deterministic Contoso-style sample data for the sandbox, at any size.

The demo, the integration tests and the benchmarks all need the same kind of data: realistic rows
in the real column names of each service, reproducible from a seed (so a failing test can be
re-run exactly), and cheap to produce at 200,000 rows. Everything here is plain dicts in the shape
the sandbox stores accept (`sandbox.Sandbox.load`): Dataverse rows keyed by entity set with lookups
given as `_<column>_value`, F&O rows keyed by entity set with `dataAreaId`.

Reference data (currencies, customer groups) is generated first and referred to by id, like a real
environment where those tables are configured before any integration runs.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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


def finops_reference_rows(companies: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Configuration an F&O environment has before integration: customer groups per company, currencies."""
    return {
        "CustomerGroups": [
            {"dataAreaId": company, "CustomerGroupId": group, "Description": description}
            for company in companies
            for group, description in CUSTOMER_GROUPS
        ],
        "Currencies": [
            {"CurrencyCode": code, "Name": name, "Symbol": symbol} for code, name, symbol in CURRENCIES
        ],
    }


def generate(size: int = 100, seed: int = 1, *, companies: tuple[str, ...] = ("usmf",)) -> Dataset:
    """A dataset with `size` accounts plus the reference data they point at."""
    rng = random.Random(f"reference:{seed}")
    ids = IdSource(rng)
    currencies = currency_rows(ids)
    currency_ids = {row["isocurrencycode"]: row["transactioncurrencyid"] for row in currencies}
    dataset = Dataset()
    dataset.dataverse["transactioncurrencies"] = currencies
    dataset.dataverse["accounts"] = list(iter_accounts(size, seed, currency_ids))
    dataset.finops.update(finops_reference_rows(companies))
    return dataset
