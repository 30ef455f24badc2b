"""The samples layout on a distributed PostgreSQL (Citus): every table that holds samples,
rollups or per-server state is distributed by `server_id` and colocated with the others, so a
server's writes and queries stay on one node. The one list of those tables, and the commands an
operator runs; tests check the schema against Citus' rules (the distribution column in every
primary and unique key, no foreign keys) and pin the README to these commands."""

from __future__ import annotations

DISTRIBUTION_COLUMN = "server_id"
# Colocated with the first: joins between them by server_id never leave a node.
DISTRIBUTED_TABLES = (
    "servers_seen",
    "metric_sets",
    "samples_raw",
    "samples_packed",
    "rollup_1m",
    "rollup_1h",
    "rollup_pending",
)
# Bookkeeping that stays on the coordinator as ordinary tables.
LOCAL_TABLES = ("schema_migrations", "samples_migration")
# The pre-0003 table the copier empties and drops; distribute only once it is gone.
LEGACY_TABLES = ("samples",)


def citus_commands(schema: str = "ingest") -> list[str]:
    """What to run on the Citus coordinator, in order, once the workers are added."""
    first = f"{schema}.{DISTRIBUTED_TABLES[0]}"
    commands = [f"SELECT create_distributed_table('{first}', '{DISTRIBUTION_COLUMN}');"]
    commands += [
        f"SELECT create_distributed_table('{schema}.{table}', '{DISTRIBUTION_COLUMN}',"
        f" colocate_with => '{first}');"
        for table in DISTRIBUTED_TABLES[1:]
    ]
    return commands
