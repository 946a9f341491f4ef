"""Registry of the Prospect-to-cash templates: what runs, in which order, from which mapping file.

The registry is data, not behaviour: the engine reads it to know a template's mapping file, its
schedule setting and what must have run before it. Run order follows `reference/templates.md`
("Cross-template rules"): products and accounts first, then contacts, then quotes and orders,
invoices last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["sales_to_fno", "fno_to_sales"]


@dataclass(frozen=True)
class TemplateDef:
    """One template: a name used in URLs, settings and state keys, and where its mapping lives."""

    name: str
    title: str
    direction: Direction
    depends_on: tuple[str, ...] = ()

    @property
    def mapping_file(self) -> str:
        return f"{self.name}.yaml"

    @property
    def schedule_setting(self) -> str:
        return f"{self.name.upper().replace('-', '_')}_SCHEDULE"

    @property
    def function_suffix(self) -> str:
        return self.name.replace("-", "_")


TEMPLATES: tuple[TemplateDef, ...] = (
    TemplateDef("products", "Products (Fin and Ops to Sales)", "fno_to_sales"),
    TemplateDef("accounts", "Accounts (Sales to Fin and Ops)", "sales_to_fno"),
    TemplateDef("contacts", "Contacts (Sales to Fin and Ops)", "sales_to_fno", ("accounts",)),
    TemplateDef(
        "contacts-to-customers", "Contacts to Customer (Sales to Fin and Ops)", "sales_to_fno", ("accounts",)
    ),
    TemplateDef(
        "quotes",
        "Sales Quotes (Sales to Fin and Ops)",
        "sales_to_fno",
        ("products", "accounts", "contacts-to-customers"),
    ),
    TemplateDef(
        "orders-to-fno",
        "Sales Orders (Sales to Fin and Ops)",
        "sales_to_fno",
        ("products", "accounts", "contacts-to-customers"),
    ),
    TemplateDef(
        "orders-to-sales",
        "Sales Orders (Fin and Ops to Sales)",
        "fno_to_sales",
        ("products", "accounts", "contacts-to-customers"),
    ),
    TemplateDef(
        "invoices",
        "Sales Invoices (Fin and Ops to Sales)",
        "fno_to_sales",
        ("products", "accounts", "contacts", "orders-to-sales"),
    ),
)

TEMPLATE_NAMES: tuple[str, ...] = tuple(t.name for t in TEMPLATES)


class UnknownTemplate(ValueError):
    """A caller named a template that does not exist (HTTP 400 / CLI usage error)."""


def get_template(name: str) -> TemplateDef:
    for template in TEMPLATES:
        if template.name == name:
            return template
    raise UnknownTemplate(f"unknown template {name!r}; known templates: {', '.join(TEMPLATE_NAMES)}")


def run_order(names: list[str] | tuple[str, ...] | None = None) -> list[TemplateDef]:
    """Templates in dependency order (a stable topological sort of the registry order)."""
    wanted = set(names) if names is not None else set(TEMPLATE_NAMES)
    for name in wanted:
        get_template(name)
    ordered: list[TemplateDef] = []
    done: set[str] = set()

    def visit(template: TemplateDef, stack: tuple[str, ...]) -> None:
        if template.name in done:
            return
        if template.name in stack:
            raise ValueError(f"dependency cycle: {' -> '.join((*stack, template.name))}")
        for dep in template.depends_on:
            visit(get_template(dep), (*stack, template.name))
        done.add(template.name)
        ordered.append(template)

    for template in TEMPLATES:
        visit(template, ())
    return [t for t in ordered if t.name in wanted]
