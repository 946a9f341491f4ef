"""Small inline catalogue and resolver shared by the mapping unit tests (no files, no network)."""

from __future__ import annotations

from typing import Any

from shared.mapping import Catalogue, ReferenceMissing

DATAVERSE: dict[str, Any] = {
    "service": "dataverse",
    "tables": {
        "account": {
            "entity_set": "accounts",
            "primary_id": "accountid",
            "primary_name": "name",
            "alternate_keys": {"accountnumber": ["accountnumber"]},
            "supports_multiple": True,
            "columns": {
                "accountnumber": {"type": "String", "max_length": 20, "writable": True},
                "name": {"type": "String", "max_length": 160, "writable": True},
                "description": {"type": "Memo", "max_length": 2000, "writable": True},
                "creditlimit": {"type": "Money", "precision": 2, "writable": True},
                "numberofemployees": {"type": "Integer", "writable": True},
                "address1_country": {"type": "String", "max_length": 80, "writable": True},
                "address1_city": {"type": "String", "max_length": 80, "writable": True},
                "telephone1": {"type": "String", "max_length": 50, "writable": True},
                "accountcategorycode": {
                    "type": "Picklist",
                    "options": {"1": "Preferred Customer", "2": "Standard"},
                    "writable": True,
                },
                "createdon": {"type": "DateTime", "writable": False},
                "lastonholdtime": {"type": "DateTime", "writable": True},
                "transactioncurrencyid": {
                    "type": "Lookup",
                    "targets": ["transactioncurrency"],
                    "bind": {"transactioncurrency": "transactioncurrencyid"},
                    "writable": True,
                },
                "parentaccountid": {
                    "type": "Lookup",
                    "targets": ["account"],
                    "bind": {"account": "parentaccountid"},
                    "writable": True,
                },
            },
        },
        "transactioncurrency": {
            "entity_set": "transactioncurrencies",
            "primary_id": "transactioncurrencyid",
            "primary_name": "currencyname",
            "alternate_keys": {"isocurrencycode": ["isocurrencycode"]},
            "columns": {"isocurrencycode": {"type": "String", "max_length": 5, "writable": True}},
        },
    },
}

FINOPS: dict[str, Any] = {
    "service": "finops",
    "entity_sets": {
        "CustomersV2": {
            "keys": ["dataAreaId", "CustomerAccount"],
            "properties": {
                "dataAreaId": {"type": "Edm.String", "nullable": False, "max_length": 4},
                "CustomerAccount": {"type": "Edm.String", "nullable": False, "max_length": 20},
                "OrganizationName": {"type": "Edm.String", "max_length": 100},
                "AddressDescription": {"type": "Edm.String", "max_length": 10},
                "AddressCountryRegionISOCode": {"type": "Edm.String", "max_length": 10},
                "AddressCity": {"type": "Edm.String", "max_length": 60},
                "SalesCurrencyCode": {"type": "Edm.String", "max_length": 3},
                "CustomerGroupId": {"type": "Edm.String", "max_length": 10},
                "CreditLimit": {"type": "Edm.Decimal", "nullable": False},
                "OrganizationNumberOfEmployees": {"type": "Edm.Int32", "nullable": False},
                "IsExternallyMaintained": {"type": "Microsoft.Dynamics.DataEntities.NoYes"},
                "PrimaryContactPhone": {"type": "Edm.String", "max_length": 255},
                "SalesMemo": {"type": "Edm.String", "max_length": 1000},
                "CreatedDate": {"type": "Edm.Date"},
                "ModifiedAt": {"type": "Edm.DateTimeOffset"},
                "RecordId": {"type": "Edm.Int64", "writable": False},
            },
        },
    },
    "enum_types": {"NoYes": {"No": 0, "Yes": 1}},
}


def catalogue() -> Catalogue:
    return Catalogue.from_dicts(DATAVERSE, FINOPS)


class FakeResolver:
    """Dict-backed resolver: {(entity, by, value): result}; anything else is missing."""

    def __init__(self, table: dict[tuple[str, str, Any], Any] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, str, Any, str]] = []

    def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any:
        self.calls.append((entity, by, value, return_field))
        try:
            return self.table[(entity, by, value)]
        except KeyError:
            raise ReferenceMissing(entity, by, value) from None


def spec_doc(fields: list[dict[str, Any]], **task: Any) -> dict[str, Any]:
    """A minimal accounts → CustomersV2 mapping document with the given field rules."""
    base: dict[str, Any] = {
        "name": "main",
        "source": {"service": "dataverse", "entity_set": "accounts", "key": "accountnumber"},
        "target": {"service": "finops", "entity_set": "CustomersV2"},
        "fields": [{"target": "CustomerAccount", "source": "accountnumber"}, *fields],
    }
    base.update(task)
    return {"version": 1, "template": "accounts", "tasks": [base]}
