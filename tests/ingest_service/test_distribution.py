"""The ingest schema is ready for Citus: every table is classified, the distributed ones share
the distribution column's type (colocation), every unique index holds it, nothing is tied to
another table by a foreign key, and the README shows exactly the commands to distribute it."""

from __future__ import annotations

from pathlib import Path

from ingest_service.distribution import (
    DISTRIBUTED_TABLES,
    DISTRIBUTION_COLUMN,
    LEGACY_TABLES,
    LOCAL_TABLES,
    citus_commands,
)
from scout_admin.commands import Admin
from tests.ingest_service.support import query

README = Path(__file__).resolve().parents[2] / "README.md"
SCHEMA = "ingest"


async def test_every_ingest_table_is_distributed_by_server_or_kept_local(admin: Admin) -> None:
    rows = await query(
        admin,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
        SCHEMA,
    )
    tables = {str(row[0]) for row in rows}
    assert set(DISTRIBUTED_TABLES) <= tables
    unclassified = tables - set(DISTRIBUTED_TABLES) - set(LOCAL_TABLES) - set(LEGACY_TABLES)
    assert not unclassified, f"say how {sorted(unclassified)} is distributed"


async def test_distributed_tables_share_the_column_and_every_unique_key_holds_it(
    admin: Admin,
) -> None:
    types = await query(
        admin,
        "SELECT c.relname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped"
        " WHERE n.nspname = %s AND c.relname = ANY(%s)",
        DISTRIBUTION_COLUMN,
        SCHEMA,
        list(DISTRIBUTED_TABLES),
    )
    assert {str(r[0]) for r in types} == set(DISTRIBUTED_TABLES)
    assert {(str(r[1]), r[2]) for r in types} == {("uuid", True)}  # colocatable, never null

    # Unique indexes, not only constraints: a unique index without the column cannot be
    # enforced per shard. Partitions inherit their parent's indexes, so parents suffice.
    indexes = await query(
        admin,
        "SELECT c.relname, i.indexrelid::regclass::text,"
        " ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k"
        "       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s) AND i.indisunique",
        SCHEMA,
        list(DISTRIBUTED_TABLES),
    )
    assert {str(r[0]) for r in indexes} == set(DISTRIBUTED_TABLES)  # each has a primary key
    for table, index, columns in indexes:
        assert DISTRIBUTION_COLUMN in columns, (table, index, columns)  # type: ignore[operator]

    exclusions = await query(
        admin,
        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = %s AND c.contype = 'x'",
        SCHEMA,
    )
    assert exclusions == []


async def test_no_foreign_key_ties_ingest_rows_to_another_table(admin: Admin) -> None:
    foreign = await query(
        admin,
        "SELECT conname, conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND (conrelid IN (SELECT c.oid FROM pg_class c"
        "   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s)"
        " OR confrelid IN (SELECT c.oid FROM pg_class c"
        "   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s))",
        SCHEMA,
        SCHEMA,
    )
    assert foreign == []


def test_the_readme_shows_the_commands_to_distribute_it() -> None:
    text = README.read_text()
    for command in citus_commands(SCHEMA):
        assert command in text, command
    assert citus_commands()[0] == (
        "SELECT create_distributed_table('ingest.servers_seen', 'server_id');"
    )
