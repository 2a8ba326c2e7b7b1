"""Copy a DuckDB file into PostgreSQL, when one machine is outgrown.

    python -m storage.copy_to_postgres data/cozy.duckdb postgresql://cozy:...@host/cozy

Stop the app first (DuckDB allows one process per file). The target gets the schema
(the same migrations) and every row, in one transaction: it either has all of it or
nothing. A target that already holds data is refused, so nothing is copied twice.
The tool state beside the file (`tools/`: the notes server's notes and reminders, the
tool pins) is copied too, into the tables the replicas share.
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
from tools.pins import PinError, PinStore
from tools.servers.notes_store import DUCKDB_TABLE, POSTGRES_TABLE, NotesStore


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


def copy_tool_state(folder: Path, url: str, progress=print) -> dict[str, int]:
    """The notes (notes.duckdb) and the tool pins (pins.json) in `folder`, where there are any."""
    counts: dict[str, int] = {}
    notes = folder / "notes.duckdb"
    if notes.is_file():
        NotesStore(None, url).close()  # its table, as the notes servers make it
        with duckdb.connect(str(notes), read_only=True) as duck, psycopg.connect(url) as pg, pg.transaction():
            if pg.execute(f"SELECT 1 FROM {POSTGRES_TABLE} LIMIT 1").fetchone():
                raise SystemExit(f"{without_password(url)} already has notes: copy into an empty database")
            columns = "id, user_id, text, remind_at, created_at"
            rows = duck.execute(f"SELECT {columns} FROM {DUCKDB_TABLE}").fetchall()
            with pg.cursor().copy(f"COPY {POSTGRES_TABLE} ({columns}) FROM STDIN") as target:
                for row in rows:
                    target.write_row(row)
            # New notes are numbered after the copied ones.
            pg.execute(f"SELECT setval('{POSTGRES_TABLE}_ids', (SELECT coalesce(max(id), 0) FROM {POSTGRES_TABLE}) + 1,"
                       " false)")
        counts[POSTGRES_TABLE] = len(rows)
        progress(f"{POSTGRES_TABLE}: {len(rows)} rows")
    pins = folder / "pins.json"
    if pins.is_file():
        source, target = PinStore(pins), PinStore(pins, url)
        try:
            counts["tool_pins"] = target.adopt(source)
        except PinError as exc:
            raise SystemExit(f"{without_password(url)}: {exc}") from None
        finally:
            target.close()
        progress(f"tool_pins: {counts['tool_pins']} tools")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the DuckDB file (the app stopped)")
    parser.add_argument("url", help="postgresql://user:password@host:port/database")
    parser.add_argument("--tools-state", type=Path, help="the tool state folder (default: tools/ beside the file)")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"{args.source}: no such file", file=sys.stderr)
        return 2
    counts = copy(args.source, args.url)
    counts.update(copy_tool_state(args.tools_state or args.source.parent / "tools", args.url))
    print(f"copied {sum(counts.values())} rows in {len(counts)} tables into {without_password(args.url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
