"""Generate the schema catalogue (`sandbox/schemas/dataverse.json`, `finops.json`).

Run: ``python -m sandbox.schemas.generate [--reference DIR] [--out DIR]``.

Why a generator and not hand-written JSON: the catalogue must use the real Dataverse / F&O names and
types, and those come from the reference extracts in ``/work/shared/reference/schemas`` (see its
SOURCES.md). Regenerating from them keeps the catalogue honest; a unit test regenerates and compares
with the committed files so a hand edit or a stale file is caught.

What the generator adds on top of the extracts (all listed in the output's ``sources``):
- the columns, option values and alternate keys of the Prospect-to-cash solution (``msdynce_*``,
  templates.md §10, docs/internals.md);
- F&O string lengths (the metadata extract has none): the EDT lengths in ``_FO_LENGTHS`` /
  ``_FO_LENGTH_SUFFIXES`` below;
- entities the templates use that no extract describes (F&O ``SellableReleasedProducts``,
  ``ExternallyMaintainedCustomerSalesInvoiceHeaders/Lines``; Dataverse ``businessunit``,
  ``systemuser``), built from the templates.md field lists and marked ``"synthesized": true``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_REFERENCE = Path("/work/shared/reference/schemas")
DEFAULT_OUT = Path(__file__).resolve().parent

DV_DOCS = "dataverse/dataverse_sales_entities.from_ms_entity_reference_docs.json"
DV_CDM = "dataverse/dataverse_entities.microsoft_cdm.json"
FO_REAL = "fo/fo_odata_entity_sets.real_env_2025.sap_sdk_extract.json"
FO_NAMES = "fo/fo_all_entity_set_names.real_env_2025.json"
FO_CDM = "fo/fo_data_entities.microsoft_cdm.json"

ENUM_NS = "Microsoft.Dynamics.DataEntities."

# --------------------------------------------------------------------------------------------------
# Dataverse
# --------------------------------------------------------------------------------------------------

#: Tables taken from the reference extract, in catalogue order (output is sorted anyway).
DV_TABLES = (
    "account",
    "contact",
    "product",
    "quote",
    "quotedetail",
    "salesorder",
    "salesorderdetail",
    "invoice",
    "invoicedetail",
    "transactioncurrency",
    "uom",
    "uomschedule",
    "pricelevel",
    "productpricelevel",
)

#: P2C alternate keys (docs/internals.md "Schema catalogue"; contact key per templates.md §10).
DV_ALTERNATE_KEYS: dict[str, dict[str, list[str]]] = {
    "account": {"accountnumber": ["accountnumber"]},
    "contact": {"msdynce_contactnumber": ["msdynce_contactnumber"]},
    "product": {"productnumber": ["productnumber"]},
    "quote": {"quotenumber": ["quotenumber"]},
    "salesorder": {"ordernumber": ["ordernumber"]},
    "invoice": {"invoicenumber": ["invoicenumber"]},
    "transactioncurrency": {"isocurrencycode": ["isocurrencycode"]},
}

#: Tables without CreateMultiple/UpdateMultiple/UpsertMultiple in the catalogue. Evidence
#: (reference/apis.md "Bulk messages"): the 2024 entity pages list the bulk messages for quotedetail,
#: salesorderdetail and salesorder; the 2023 quote page lists none and invoice is unconfirmed. Account
#: and contact follow docs/internals.md (supported). Keeping two tables without bulk support makes the
#: sandbox exercise the product's `$batch` fallback too; the product must still probe
#: `sdkmessagefilters` against a real environment.
DV_NO_MULTIPLE = frozenset({"quote", "invoice"})

#: SystemRequired columns the platform fills itself when a create omits them (state, owner,
#: auto-numbers, defaults); they are not `required` for a client.
DV_SYSTEM_DEFAULTED = frozenset(
    {
        "statecode",
        "statuscode",
        "ownerid",
        "quotenumber",
        "ordernumber",
        "invoicenumber",
        "producttypecode",
        "propertyconfigurationstatus",
        "productstructure",
        "currencyprecision",
        "currencytype",
        "revisionnumber",
    }
)

_BOOL_P2C = {"type": "Boolean", "writable": True}

#: Columns the Prospect-to-cash solution (`msdynce_ProspectToCashIntegration`) adds (templates.md §10).
P2C_COLUMNS: dict[str, dict[str, dict[str, Any]]] = {
    "account": {},
    "contact": {
        "msdynce_contactnumber": {"type": "String", "max_length": 20, "writable": True},
        "msdynce_isactivecustomer": dict(_BOOL_P2C),
        "msdynce_iscompanyanaccount": dict(_BOOL_P2C),
    },
    "product": {"msdynce_ismaintainedexternally": dict(_BOOL_P2C)},
    "quote": {
        "msdynce_hasexternallymaintainedproductsonly": dict(_BOOL_P2C),
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
    },
    "quotedetail": {
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
        "msdynce_quotehasexternalmaintainedproductsonly": dict(_BOOL_P2C),
        "msdynce_quoterevisionnumber": {"type": "Integer", "writable": True},
    },
    "salesorder": {
        "msdynce_processingstatus": {
            "type": "Picklist",
            "writable": True,
            "options": {
                "647390000": "Active",
                "647390001": "Confirmed",
                "647390002": "Packing Slip",
                "647390003": "Invoiced",
                "647390004": "Picked",
                "647390005": "Partially Picked",
                "647390006": "Partially Packed",
                "647390007": "Shipped",
                "647390008": "Partially Shipped",
                "647390009": "Partially Invoiced",
                "647390010": "Cancelled",
                "647390011": "Draft",
            },
        },
        "msdynce_hasexternallymaintainedproductsonly": dict(_BOOL_P2C),
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
        "msdynce_misctax": {"type": "Money", "writable": True, "precision": 2},
    },
    "salesorderdetail": {
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
        "msdynce_ismisctax": dict(_BOOL_P2C),
        "msdynce_orderhasexternalmaintainedproductsonly": dict(_BOOL_P2C),
        "msdynce_orderissubmitted": dict(_BOOL_P2C),
        "msdynce_ordernumber": {"type": "String", "max_length": 100, "writable": True},
    },
    "invoice": {
        "msdynce_invoicedate": {"type": "DateTime", "writable": True},
        "msdynce_hasexternallymaintainedproductsonly": dict(_BOOL_P2C),
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
        "msdynce_misctax": {"type": "Money", "writable": True, "precision": 2},
    },
    "invoicedetail": {
        "msdynce_invoicedate": {"type": "DateTime", "writable": True},
        "msdynce_invoicenumber": {"type": "String", "max_length": 100, "writable": True},
        "msdynce_ismaintainedexternally": dict(_BOOL_P2C),
        "msdynce_ismisctax": dict(_BOOL_P2C),
    },
}

#: Option values the P2C solution adds to existing option sets (templates.md §10).
P2C_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    "quote": {"statuscode": {"647390000": "Submitted"}},
}

#: Column overrides the P2C solution makes (templates.md §1: accountnumber required, length 20).
#: `required` stays false: the P2C pre-create plugin fills the number when a create omits it.
P2C_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "account": {"accountnumber": {"max_length": 20, "required_level": "ApplicationRequired"}},
}


#: Reference tables with no extract (lookup targets of owner / business-unit columns). Columns are
#: the well-known core ones of the Dataverse `businessunit` / `systemuser` tables.
DV_SYNTHESIZED: dict[str, dict[str, Any]] = {
    "businessunit": {
        "entity_set": "businessunits",
        "primary_id": "businessunitid",
        "primary_name": "name",
        "columns": {
            "businessunitid": {"type": "Uniqueidentifier", "writable": True},
            "name": {"type": "String", "max_length": 160, "writable": True, "required": True,
                     "required_level": "SystemRequired"},
            "parentbusinessunitid": {"type": "Lookup", "writable": True, "targets": ["businessunit"],
                                     "bind": {"businessunit": "parentbusinessunitid"}},
            "divisionname": {"type": "String", "max_length": 100, "writable": True},
            "isdisabled": {"type": "Boolean", "writable": False},
            "createdon": {"type": "DateTime", "writable": False},
            "modifiedon": {"type": "DateTime", "writable": False},
        },
    },
    "systemuser": {
        "entity_set": "systemusers",
        "primary_id": "systemuserid",
        "primary_name": "fullname",
        "columns": {
            "systemuserid": {"type": "Uniqueidentifier", "writable": True},
            "fullname": {"type": "String", "max_length": 200, "writable": False},
            "firstname": {"type": "String", "max_length": 256, "writable": True},
            "lastname": {"type": "String", "max_length": 256, "writable": True},
            "domainname": {"type": "String", "max_length": 1024, "writable": True},
            "internalemailaddress": {"type": "String", "max_length": 100, "writable": True},
            "applicationid": {"type": "Uniqueidentifier", "writable": True},
            "businessunitid": {"type": "Lookup", "writable": True, "targets": ["businessunit"],
                               "bind": {"businessunit": "businessunitid"}},
            "isdisabled": {"type": "Boolean", "writable": False},
            "createdon": {"type": "DateTime", "writable": False},
            "modifiedon": {"type": "DateTime", "writable": False},
        },
    },
}

#: Length of the few String/Memo columns neither extract gives one for (Dataverse's default for a
#: new text column is 100).
DV_DEFAULT_LENGTH = 100
#: ... and of a Memo column (Dataverse's default multiline-text size).
DV_MEMO_DEFAULT_LENGTH = 2000

_DV_LOOKUPS = frozenset({"Lookup", "Customer", "Owner"})
_DV_CHOICES = frozenset({"Picklist", "State", "Status"})


def _number(text: Any) -> int | float:
    """Reference files store limits as strings ("-1500", "0.5"); JSON numbers are wanted."""
    if isinstance(text, int | float):
        return text
    value = float(str(text))
    return int(value) if value.is_integer() else value


def _clean(text: Any) -> str:
    """Drop the extract's inline provenance notes: "productpricelevels(inferred from ...)" → name."""
    return str(text or "").split("(", 1)[0].strip()


def _dv_column(name: str, attr: Mapping[str, Any], primary_id: str) -> dict[str, Any]:
    """One extract attribute → one catalogue column (internals.md format)."""
    kind = str(attr["type"])
    if kind == "DateTime" and attr.get("format") == "DateOnly":
        kind = "DateOnly"
    col: dict[str, Any] = {"type": kind, "writable": bool(attr.get("writable", False))}
    if "maxLength" in attr:
        col["max_length"] = int(attr["maxLength"])
    if "minValue" in attr:
        col["min"] = _number(attr["minValue"])
    if "maxValue" in attr:
        col["max"] = _number(attr["maxValue"])
    if "precision" in attr:
        col["precision"] = int(_number(attr["precision"]))
    if kind == "Money" and "precision" not in col:
        col["precision"] = 2
    if kind in _DV_CHOICES:
        col["options"] = {str(k): str(v) for k, v in (attr.get("options") or {}).items()}
    level = attr.get("required_level")
    if level:
        col["required_level"] = str(level)
    col["required"] = bool(
        level == "SystemRequired"
        and col["writable"]
        and name != primary_id
        and name not in DV_SYSTEM_DEFAULTED
    )
    if kind in _DV_LOOKUPS:
        targets = [str(t) for t in attr.get("targets") or []]
        col["targets"] = targets
        nav = attr.get("navigation_property")
        bind: dict[str, str] = {}
        if isinstance(nav, list):
            # polymorphic: names are `<column>_<target>` in target order
            for target, nav_name in zip(targets, nav, strict=False):
                bind[target] = str(nav_name)
        elif isinstance(nav, str):
            bind = dict.fromkeys(targets, nav)
        elif kind == "Customer":
            bind = {t: f"{name}_{t}" for t in targets}
        else:
            bind = dict.fromkeys(targets, name)
        col["bind"] = bind
    return col


def build_dataverse(reference: Path) -> dict[str, Any]:
    """The whole dataverse.json document."""
    docs = json.loads((reference / DV_DOCS).read_text(encoding="utf-8"))["entities"]
    cdm = json.loads((reference / DV_CDM).read_text(encoding="utf-8"))["entities"]
    tables: dict[str, Any] = {}
    for logical in DV_TABLES:
        ent = docs[logical]
        primary_id = _clean(ent["primary_id_attribute"])
        primary_name = _clean(ent.get("primary_name_attribute"))
        columns: dict[str, Any] = {}
        for name, attr in ent["attributes"].items():
            if attr.get("type") == "EntityName":
                # `<lookup>type` companions are not Web API properties (the type travels in the
                # `@odata.bind` entity set / `lookuplogicalname` annotation instead).
                continue
            columns[name] = _dv_column(name, attr, primary_id)
            cdm_len = cdm.get(logical, {}).get("attributes", {}).get(name, {}).get("maxLength")
            if columns[name]["type"] in ("String", "Memo") and "max_length" not in columns[name]:
                default = DV_MEMO_DEFAULT_LENGTH if columns[name]["type"] == "Memo" else DV_DEFAULT_LENGTH
                columns[name]["max_length"] = int(cdm_len) if cdm_len else default
        for name, spec in P2C_COLUMNS.get(logical, {}).items():
            columns[name] = {"required": False, "p2c": True, **spec}
        for name, extra in P2C_OPTIONS.get(logical, {}).items():
            columns[name]["options"] = {**columns[name].get("options", {}), **extra}
        for name, override in P2C_OVERRIDES.get(logical, {}).items():
            columns[name].update(override)
        tables[logical] = {
            "entity_set": _clean(ent["entity_set_name"]),
            "primary_id": primary_id,
            # productpricelevel names a virtual `productidname` that is not a column: no primary name
            "primary_name": primary_name if primary_name in columns else None,
            "alternate_keys": DV_ALTERNATE_KEYS.get(logical, {}),
            "supports_multiple": logical not in DV_NO_MULTIPLE,
            "columns": columns,
        }
    for logical, spec in DV_SYNTHESIZED.items():
        cols = {n: {"required": False, **c} for n, c in spec["columns"].items()}
        tables[logical] = {
            "entity_set": spec["entity_set"],
            "primary_id": spec["primary_id"],
            "primary_name": spec["primary_name"],
            "alternate_keys": {},
            "supports_multiple": logical not in DV_NO_MULTIPLE,
            "synthesized": True,
            "columns": cols,
        }
    return {
        "service": "dataverse",
        "sources": [
            f"reference/schemas/{DV_DOCS} (tables, columns, types, lengths, options, lookups)",
            f"reference/schemas/{DV_CDM} (max_length where the docs extract has none; else 100)",
            "EntityName columns (<lookup>type) omitted: not Web API properties",
            "templates.md §10: Prospect-to-cash solution msdynce_* columns, quote statuscode "
            "Submitted=647390000, account accountnumber length 20",
            "docs/internals.md: P2C alternate keys",
            'columns flagged "p2c": true are added by the Prospect-to-cash solution (templates.md §10)',
            "supports_multiple=false for quote, invoice (bulk messages unconfirmed, reference/apis.md)",
            "synthesized (no reference extract): businessunit, systemuser (well-known core columns)",
            "required=true only for SystemRequired writable columns the platform does not default",
        ],
        "tables": tables,
    }


# --------------------------------------------------------------------------------------------------
# Finance and Operations
# --------------------------------------------------------------------------------------------------

#: Entity sets copied from the real-metadata extract.
FO_SETS = (
    "CustomersV2",
    "CustomersV3",
    "CustomerGroups",
    "CDSContactPersons",
    "CDSContactPersonsV2",
    "CDSReleasedDistinctProducts",
    "CDSSalesQuotationHeaders",
    "CDSSalesQuotationLines",
    "CDSSalesOrderHeaders",
    "CDSSalesOrderLines",
    "CDSSalesOrderLinesV2",
    "SalesInvoiceHeadersV2",
    "SalesInvoiceV2Lines",
    "Currencies",
    "UnitsOfMeasure",
    "LegalEntities",
    "Companies",
    "PaymentTerms",
    "DeliveryTerms",
    "DeliveryModesV2",
    "Warehouses",
    "OperationalSitesV2",
)

#: Exact F&O string lengths (EDT lengths) for names the templates touch. The metadata extract has no
#: MaxLength facets; these are the standard application EDT sizes.
_FO_LENGTHS: dict[str, int] = {
    "dataAreaId": 4,
    "CustomerAccount": 20,
    "PartyNumber": 40,
    "OrganizationName": 100,
    "PersonFirstName": 25,
    "PersonMiddleName": 25,
    "PersonLastName": 25,
    "PersonLastNamePrefix": 25,
    "FirstName": 25,
    "MiddleName": 25,
    "LastName": 25,
    "CustomerGroupId": 10,
    "SalesCurrencyCode": 3,
    "CurrencyCode": 3,
    "LanguageId": 7,
    "SiteId": 10,
    "WarehouseId": 10,
    "DefaultShippingSiteId": 10,
    "DefaultShippingWarehouseId": 10,
    "ShippingSiteId": 10,
    "ShippingWarehouseId": 10,
    "PrimaryContactEmail": 255,
    "PrimaryContactPhone": 255,
    "PrimaryContactFax": 255,
    "PrimaryContactURL": 255,
    "PrimaryEmailAddress": 255,
    "PrimaryPhoneNumber": 255,
    "PrimaryURL": 255,
    "SalesMemo": 1000,
    "Notes": 1000,
    "ProductNumber": 20,
    "ItemNumber": 20,
    "ProductName": 60,
    "ProductSearchName": 20,
    "ProductDescription": 1000,
    "SalesQuotationNumber": 20,
    "SalesOrderNumber": 20,
    "InvoiceNumber": 20,
    "LedgerVoucher": 20,
    "SalesQuotationName": 60,
    "SalesOrderName": 60,
    "CustomersOrderReference": 60,
    "ContactPersonPartyNumber": 40,
    "AssociatedPartyNumber": 40,
    "AssociatedContactNumber": 20,
    "ContactPersonId": 20,
    "GovernmentIdentificationNumber": 20,
    "EmploymentDepartment": 60,
    "EmploymentProfession": 60,
    "SalesUnitSymbol": 10,
    "InventoryUnitSymbol": 10,
    "UnitSymbol": 10,
    "RequestingCustomerAccountNumber": 20,
    "OrderingCustomerAccountNumber": 20,
    "InvoiceCustomerAccountNumber": 20,
    "PaymentTermsName": 10,
    "DeliveryTermsCode": 10,
    "DeliveryModeCode": 10,
    "Name": 60,
    "Description": 60,
    "LineDescription": 1000,
    "ISOCurrencyCode": 3,
}

#: Length by name suffix when no exact entry exists (address and contact EDTs).
_FO_LENGTH_SUFFIXES: tuple[tuple[str, int], ...] = (
    ("AddressStreet", 250),
    ("AddressStreetNumber", 20),
    ("AddressCity", 60),
    ("AddressZipCode", 10),
    ("AddressStateId", 10),
    ("AddressState", 10),
    ("AddressCountyId", 10),
    ("AddressCounty", 10),
    ("CountryRegionISOCode", 10),
    ("CountryRegionId", 10),
    ("AddressDescription", 60),
    ("AddressName", 60),
    ("AddressLocationRoles", 255),
    ("AddressLocationId", 20),
    ("Street", 250),
    ("City", 60),
    ("ZipCode", 10),
    ("Email", 255),
    ("Phone", 255),
    ("PhoneExtension", 10),
    ("Fax", 255),
    ("URL", 255),
    ("Url", 255),
    ("CurrencyCode", 3),
    ("UnitSymbol", 10),
    ("AccountNumber", 20),
    ("CustomerAccount", 20),
    ("Number", 20),
    ("Id", 20),
    ("Code", 10),
    ("Name", 60),
    ("Description", 60),
)

#: Fallback length of other strings: the common 60-character "Name" EDT would reject data real F&O
#: accepts for longer EDTs, so unknown strings get the roomier 255 (Addressing/URL size).
_FO_DEFAULT_LENGTH = 255


def fo_string_length(name: str) -> int:
    """The max length of an F&O string property (exact name, then suffix, then the default)."""
    if name in _FO_LENGTHS:
        return _FO_LENGTHS[name]
    for suffix, length in _FO_LENGTH_SUFFIXES:
        if name.endswith(suffix):
            return length
    return _FO_DEFAULT_LENGTH


def _fo_property(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": str(spec["type"]), "nullable": bool(spec.get("nullable", True))}
    if prop["type"] == "Edm.String":
        prop["max_length"] = fo_string_length(name)
    return prop


def _s(nullable: bool = True) -> dict[str, Any]:
    return {"type": "Edm.String", "nullable": nullable}


def _d() -> dict[str, Any]:
    return {"type": "Edm.Decimal", "nullable": False}


def _date() -> dict[str, Any]:
    return {"type": "Edm.Date", "nullable": False}


def _enum(enum: str) -> dict[str, Any]:
    return {"type": ENUM_NS + enum, "nullable": False}


#: Entity sets the templates use that the real-metadata extract does not describe. Property lists
#: come from templates.md (§4, §8, §11); types follow the same-named properties of the closest real
#: entity (named in "like") where one exists, else the given spec.
FO_SYNTHESIZED: dict[str, dict[str, Any]] = {
    "SellableReleasedProducts": {
        "like": ["CDSReleasedDistinctProducts", "ReleasedProductsV2"],
        "keys": ["dataAreaId", "ProductNumber"],
        "source": "templates.md §4 (EcoResSellableReleasedProductEntity field list, CDM)",
        "properties": {
            "dataAreaId": _s(False),
            "ProductNumber": _s(False),
            "SalesUnitSymbol": _s(),
            "SalesUnitDecimalPrecision": {"type": "Edm.Int32", "nullable": False},
            "ProductName": _s(),
            "ProductDescription": _s(),
            "ProductType": _enum("EcoResProductType"),
            "IsStockedProduct": _enum("NoYes"),
            "IsSalesStopped": _enum("NoYes"),
            "UnitCost": _d(),
            "SalesPrice": _d(),
            "CurrencyCode": _s(),
            "FieldServiceProductType": _enum("EcoResFieldServiceProductType"),
            "InventoryUnitDecimalPrecision": {"type": "Edm.Int32", "nullable": False},
            "InventoryUnitSymbol": _s(),
        },
    },
    "ExternallyMaintainedCustomerSalesInvoiceHeaders": {
        "like": ["SalesInvoiceHeadersV2"],
        "keys": ["dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher"],
        "source": "templates.md §8 (SalesInvoiceHeader mapping, §11 keys)",
        "properties": {
            "dataAreaId": _s(False),
            "InvoiceNumber": _s(False),
            "InvoiceDate": _date(),
            "LedgerVoucher": _s(False),
            "InvoiceCustomerAccountNumber": _s(),
            "InvoiceAddressStreet": _s(),
            "InvoiceAddressStreetNumber": _s(),
            "InvoiceAddressCity": _s(),
            "InvoiceAddressCountryRegionISOCode": _s(),
            "InvoiceAddressZipCode": _s(),
            "InvoiceAddressState": _s(),
            "CustomersOrderReference": _s(),
            "TotalDiscountCustomerGroupCode": _d(),
            "CurrencyCode": _s(),
            "SalesOrderNumber": _s(),
            "TotalInvoiceAmount": _d(),
            "TotalChargeAmount": _d(),
            "TotalDiscountAmount": _d(),
            "TotalTaxAmount": _d(),
        },
    },
    "ExternallyMaintainedCustomerSalesInvoiceLines": {
        "like": ["SalesInvoiceV2Lines"],
        "keys": ["dataAreaId", "InvoiceNumber", "InvoiceDate", "LineCreationSequenceNumber", "LedgerVoucher"],
        "source": "templates.md §8 (SalesInvoiceLine mapping, §11 keys)",
        "properties": {
            "dataAreaId": _s(False),
            "InvoiceNumber": _s(False),
            "InvoiceDate": _date(),
            "LineCreationSequenceNumber": {"type": "Edm.Int64", "nullable": False},
            "LedgerVoucher": _s(False),
            "InvoicedQuantity": _d(),
            "SalesUnitSymbol": _s(),
            "SalesPrice": _d(),
            "CurrencyCode": _s(),
            "LineTotalDiscountAmount": _d(),
            "LineAmount": _d(),
            "LineTotalTaxAmount": _d(),
            "ProductNumber": _s(),
            "ProductName": _s(),
        },
    },
}

#: Enum types used by synthesized entities that the extract does not define (none so far: every
#: enum a synthesized property uses exists in the real metadata).
FO_EXTRA_ENUMS: dict[str, dict[str, int]] = {}


def _enum_name(type_name: str) -> str | None:
    return type_name[len(ENUM_NS):] if type_name.startswith(ENUM_NS) else None


def build_finops(reference: Path) -> dict[str, Any]:
    """The whole finops.json document."""
    real = json.loads((reference / FO_REAL).read_text(encoding="utf-8"))
    real_sets: Mapping[str, Any] = real["entity_sets"]
    all_names = set(json.loads((reference / FO_NAMES).read_text(encoding="utf-8"))["entity_sets"])
    sets: dict[str, Any] = {}
    for name in FO_SETS:
        spec = real_sets[name]
        props = {p: _fo_property(p, s) for p, s in spec["properties"].items()}
        for key in spec["keys"]:
            props[key]["nullable"] = False  # OData key properties are never nullable
        entry: dict[str, Any] = {"keys": list(spec["keys"]), "properties": props}
        navs = spec.get("navigation_properties") or {}
        if navs:
            entry["navigation_properties"] = {
                n: {"kind": str(v.get("kind")), "target": str(v.get("target_entity_set"))}
                for n, v in navs.items()
            }
        sets[name] = entry
    for name, syn in FO_SYNTHESIZED.items():
        props = {}
        for p, s in syn["properties"].items():
            likes = [real_sets[like]["properties"] for like in syn["like"]]
            base = next((props_of[p] for props_of in likes if p in props_of), s)
            props[p] = _fo_property(p, base)
            if p in syn["keys"]:
                props[p]["nullable"] = False
        sets[name] = {
            "keys": list(syn["keys"]),
            "properties": props,
            "synthesized": True,
            "exists_in_real_metadata": name in all_names,
        }
    enum_types: dict[str, dict[str, int]] = {}
    real_enums: Mapping[str, Mapping[str, int]] = real["enum_types"]
    for entry in sets.values():
        for prop in entry["properties"].values():
            enum = _enum_name(prop["type"])
            if enum is None:
                continue
            members = real_enums.get(enum) or FO_EXTRA_ENUMS.get(enum)
            if members is None:
                raise KeyError(f"enum type {enum} is used but defined nowhere")
            enum_types[enum] = {str(k): int(v) for k, v in members.items()}
    return {
        "service": "finops",
        "sources": [
            f"reference/schemas/{FO_REAL} (entity sets, keys, property types, nullability, enums)",
            "max_length: standard F&O EDT lengths (generator table; the metadata extract has no facets)",
            *(f"synthesized {n}: {s['source']}; types from {'/'.join(s['like'])} where names match"
              for n, s in FO_SYNTHESIZED.items()),
        ],
        "entity_sets": sets,
        "enum_types": enum_types,
    }


# --------------------------------------------------------------------------------------------------


def render(document: Mapping[str, Any]) -> str:
    """Deterministic JSON text (sorted keys, one trailing newline) so regeneration diffs are clean."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate(reference: Path = DEFAULT_REFERENCE, out: Path = DEFAULT_OUT) -> list[Path]:
    """Write dataverse.json and finops.json into `out`; returns the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, document in (
        ("dataverse.json", build_dataverse(reference)),
        ("finops.json", build_finops(reference)),
    ):
        path = out / file_name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in generate(args.reference, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
