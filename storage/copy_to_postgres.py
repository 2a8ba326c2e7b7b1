"""Copy a DuckDB file into PostgreSQL, when one machine is outgrown.

    python -m storage.copy_to_postgres data/cozy.duckdb postgresql://cozy:...@host/cozy

Stop the app first (DuckDB allows one process per file). The target gets the schema
(the same migrations) and every row, in one transaction: it either has all of it or
nothing. A target that already holds data is refused, so nothing is copied twice.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import psycopg

from storage.migrations import MIGRATIONS
from storage.postgres import PostgresDatabase
from storage.urls import without_password


def tables_of(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                        "AND table_name <> 'schema_version' ORDER BY table_name").fetchall()
    return [name for (name,) in rows]


def copy(source: Path, url: str, progress=print) -> dict[str, int]:
    """Returns the rows copied per table."""
    with duckdb.connect(str(source), read_only=True) as duck:
        version = duck.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if version != MIGRATIONS[-1][0]:
            raise SystemExit(f"{source} is at schema {version}, this code at {MIGRATIONS[-1][0]}: start the app on "
                             "it once (it migrates), stop it, then copy")
        PostgresDatabase(url).close()  # creates the schema, under the migration lock
        counts: dict[str, int] = {}
        with psycopg.connect(url) as pg, pg.transaction():
            tables = tables_of(duck)
            for table in tables:
                if pg.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone():  # noqa: S608 - names from the catalog
                    raise SystemExit(f"{without_password(url)} already has rows in {table}: copy into an empty database")
            for table in tables:
                cursor = duck.execute(f'SELECT * FROM "{table}"')  # noqa: S608
                columns = ", ".join(f'"{d[0]}"' for d in cursor.description)
                n = 0
                with pg.cursor().copy(f'COPY "{table}" ({columns}) FROM STDIN') as target:
                    while batch := cursor.fetchmany(5000):
                        for row in batch:
                            target.write_row(row)
                        n += len(batch)
                counts[table] = n
                progress(f"{table}: {n} rows")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the DuckDB file (the app stopped)")
    parser.add_argument("url", help="postgresql://user:password@host:port/database")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"{args.source}: no such file", file=sys.stderr)
        return 2
    counts = copy(args.source, args.url)
    print(f"copied {sum(counts.values())} rows in {len(counts)} tables into {without_password(args.url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
