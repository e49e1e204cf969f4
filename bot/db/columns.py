"""Tables declared as data: a column a line, `name Type[(length)] [primary key [autoincrement]]
[not null] [default JSON] [-- comment]`, read into SQLAlchemy Core's `Table`.

The types are SQLAlchemy's by name; the words after them are SQL's: a key autoincrements only
when it says so, and a column is nullable unless `not null` (or a primary key). `default` is
the value SQLAlchemy gives an INSERT that leaves the column out (JSON: `0`, `0.0`, `false`,
`"waiting"`), not a default of the database's: the tables' DDL has none."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.schema import SchemaItem

TYPES: dict[str, Any] = {
    "BigInteger": BigInteger,
    "Boolean": Boolean,
    "Float": Float,
    "Integer": Integer,
    "JSON": JSON,
    "LargeBinary": LargeBinary,
    "String": String,
    "Text": Text,
}

_COLUMN = re.compile(
    r"(?P<name>\w+)\s+(?P<type>\w+)(?:\((?P<length>\d+)\))?"
    r"(?P<key>\s+primary key(?P<auto>\s+autoincrement)?)?"
    r"(?P<required>\s+not null)?"
    r"(?:\s+default\s+(?P<default>\S+))?"
    r"\s*(?:--.*)?"
)


def column(line: str) -> Column[Any]:
    """One column from its line; ValueError for a line not in the form above."""
    found = _COLUMN.fullmatch(line.strip())
    if found is None or found["type"] not in TYPES:
        raise ValueError(f"not a column: {line.strip()!r}")
    kind = TYPES[found["type"]]
    options: dict[str, Any] = {}
    if found["key"]:
        options.update(primary_key=True, autoincrement=found["auto"] is not None)
    if found["required"]:
        options["nullable"] = False
    if found["default"] is not None:
        options["default"] = json.loads(found["default"])
    length = found["length"]
    return Column(found["name"], kind(int(length)) if length else kind, **options)


def table(name: str, metadata: MetaData, columns: str, *extras: SchemaItem) -> Table:
    """The table `name` of `metadata` with a column for each non-blank line of `columns`, then
    `extras` (its indexes)."""
    lines = [line for line in columns.splitlines() if line.strip()]
    return Table(name, metadata, *(column(line) for line in lines), *extras)
