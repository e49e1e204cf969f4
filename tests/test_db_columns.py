"""Tables declared as data (bot/db/columns.py): each line is the column SQLAlchemy would have
been given, and a line not in the form is refused at import rather than read half-way."""

from __future__ import annotations

import pytest
from sqlalchemy import BigInteger, Float, Index, MetaData, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from bot.db.columns import column, table


def test_a_line_is_a_column_with_its_type_key_nullability_and_default() -> None:
    key = column("id  BigInteger  primary key")
    assert key.name == "id" and isinstance(key.type, BigInteger)
    assert key.primary_key and not key.nullable and key.autoincrement is False

    counted = column("id  Integer  primary key autoincrement")
    assert counted.primary_key and counted.autoincrement is True

    name = column("repo  String(300)  not null  -- owner/name")
    assert isinstance(name.type, String) and name.type.length == 300
    assert not name.nullable and not name.primary_key and name.default is None

    optional = column("finished_at  Float")
    assert isinstance(optional.type, Float) and optional.nullable


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("steps Integer not null default 0", 0),
        ("cost_usd Float not null default 0.0", 0.0),
        ("suspended Boolean not null default false", False),
        ('state String(20) not null default "waiting"', "waiting"),
    ],
)
def test_a_default_is_json_and_only_sqlalchemys(line: str, value: object) -> None:
    found = column(line)
    assert found.default is not None
    default: object = getattr(found.default, "arg", None)
    assert default == value and type(default) is type(value)
    assert found.server_default is None  # the database's DDL has no default


@pytest.mark.parametrize(
    "line",
    [
        "id",  # no type
        "id Varchar(40)",  # not a SQLAlchemy type of the table
        "id String(40) primary",
        "id String(40) not null primary key",  # the words in another order
        "id Integer autoincrement",  # only a key autoincrements
        "n Integer default zero",  # not JSON
    ],
)
def test_a_line_not_in_the_form_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        column(line)


def test_a_table_has_a_column_a_line_then_its_indexes() -> None:
    declared = table(
        "pairs",
        MetaData(),
        """
        repo    String(300)  primary key
        number  Integer      primary key

        at      Float        not null
        """,
        Index("ix_pairs_at", "at"),
    )
    assert [c.name for c in declared.columns] == ["repo", "number", "at"]
    assert [c.name for c in declared.primary_key] == ["repo", "number"]
    assert [i.name for i in declared.indexes] == ["ix_pairs_at"]
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        ddl = " ".join(str(CreateTable(declared).compile(dialect=dialect)).split())
        assert ddl == (
            "CREATE TABLE pairs ( repo VARCHAR(300) NOT NULL, number INTEGER NOT NULL,"
            " at FLOAT NOT NULL, PRIMARY KEY (repo, number) )"
        )
