"""Approved tool fingerprints, kept in a JSON file an operator can read (or one shared row).

A clean tool seen for the first time is pinned automatically (trust on first
use). A tool whose fingerprint later differs from its pin is held back (a rug
pull) until an operator approves the new version; so is a tool whose description
was flagged. `approve()` is what `python -m tools.cli approve NAME` calls. With
several replicas (COZY_DB_URL) the pins are one row of their shared PostgreSQL.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.shared_tables import connect_with_tables


class PinError(ValueError):
    """An approval that cannot be done; the message says why."""


@dataclass(frozen=True)
class PinVerdict:
    enabled: bool
    reason: str = ""  # why a tool is held back


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _document(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pins as stored, with both parts present (an older or hand-edited copy may lack one)."""
    return {"approved": dict(data.get("approved") or {}), "pending": dict(data.get("pending") or {})}


class _PinsFile:
    """The pins as a JSON file beside the rest of the tool state; written atomically."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def editing(self) -> Iterator[tuple[dict[str, dict[str, Any]], Callable[[dict[str, Any]], None]]]:
        yield self._load(), self._save  # PinStore's lock makes load-change-save one step

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"approved": {}, "pending": {}}
        except (OSError, ValueError) as exc:
            raise PinError(f"{self.path}: unreadable pins file ({exc}); fix or remove it") from exc
        return _document(data)

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(scratch, self.path)

    def close(self) -> None:
        pass


class _PinsRow:
    """The same document in one row of the replicas' shared PostgreSQL (table tool_pins), so a
    tool pinned or approved on one replica is on all of them; the row lock makes each
    load-change-save one step across replicas."""

    def __init__(self, url: str):
        self._conn = connect_with_tables(url, "tool_pins", [
            "CREATE TABLE IF NOT EXISTS tool_pins (id INTEGER PRIMARY KEY, document TEXT NOT NULL)",
            """INSERT INTO tool_pins VALUES (1, '{"approved": {}, "pending": {}}') ON CONFLICT (id) DO NOTHING"""])

    @contextmanager
    def editing(self) -> Iterator[tuple[dict[str, dict[str, Any]], Callable[[dict[str, Any]], None]]]:
        with self._conn.transaction():
            row = self._conn.execute("SELECT document FROM tool_pins WHERE id = 1 FOR UPDATE").fetchone()
            data = json.loads(row[0])

            def save(changed: dict[str, Any]) -> None:
                self._conn.execute("UPDATE tool_pins SET document = %s WHERE id = 1",
                                   [json.dumps(changed, sort_keys=True)])
            yield _document(data), save

    def close(self) -> None:
        self._conn.close()


class PinStore:
    """{"approved": {tool: pin}, "pending": {tool: what changed}}: a JSON file, or with `url`
    (COZY_DB_URL) one row of the shared PostgreSQL."""

    def __init__(self, path: Path, url: str | None = None):
        self.path = path
        self._pins = _PinsRow(url) if url else _PinsFile(path)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._pins.close()

    def verdict(self, tool: str, server: str, digest: str, findings: list[str]) -> PinVerdict:
        """Whether this exact version of a tool may be used, pinning it on first clean sight."""
        with self._lock, self._pins.editing() as (data, save):
            pin = data["approved"].get(tool)
            if pin and pin.get("sha256") == digest and pin.get("server") == server:
                if findings and pin.get("approved_by") != "operator":
                    reason = "description carries hidden instructions: " + "; ".join(findings)
                    return self._hold(data, save, tool, server, digest, findings, reason)
                if data["pending"].pop(tool, None) is not None:  # it changed back to the approved version
                    save(data)
                return PinVerdict(True)
            if pin:
                where = "another server" if pin.get("server") != server else "its approved version"
                reason = (f"description or schema changed since {pin.get('approved_at', 'approval')} "
                          f"(differs from {where}; possible rug pull)")
                return self._hold(data, save, tool, server, digest, findings, reason)
            if findings:
                reason = "description carries hidden instructions: " + "; ".join(findings)
                return self._hold(data, save, tool, server, digest, findings, reason)
            data["approved"][tool] = {"server": server, "sha256": digest, "approved_at": _now(),
                                      "approved_by": "first-use"}
            data["pending"].pop(tool, None)
            save(data)
            return PinVerdict(True)

    def _hold(self, data: dict[str, Any], save: Callable[[dict[str, Any]], None], tool: str, server: str,
              digest: str, findings: list[str], reason: str) -> PinVerdict:
        held = {"server": server, "sha256": digest, "findings": findings, "reason": reason}
        if {k: v for k, v in data["pending"].get(tool, {}).items() if k != "seen_at"} != held:
            data["pending"][tool] = {**held, "seen_at": _now()}
            save(data)
        return PinVerdict(False, reason)

    def approve(self, tool: str) -> dict[str, Any]:
        """Approve the held-back version of a tool; it is used from the next listing on."""
        with self._lock, self._pins.editing() as (data, save):
            pending = data["pending"].pop(tool, None)
            if pending is None:
                known = ", ".join(sorted(data["pending"])) or "none"
                raise PinError(f"no tool named '{tool}' is waiting for approval (waiting: {known})")
            pin = {"server": pending["server"], "sha256": pending["sha256"], "approved_at": _now(),
                   "approved_by": "operator"}
            data["approved"][tool] = pin
            save(data)
            return pin

    def adopt(self, other: "PinStore") -> int:
        """Take every pin of `other` (a replica's file, copied into the shared row); only into an
        empty store, so no approval is overwritten. Returns how many tools it holds."""
        with other._lock, other._pins.editing() as (theirs, _):
            with self._lock, self._pins.editing() as (ours, save):
                if ours["approved"] or ours["pending"]:
                    raise PinError("the target already holds tool pins: adopt into an empty store")
                save(theirs)
                return len(theirs["approved"]) + len(theirs["pending"])

    def pending(self) -> dict[str, dict[str, Any]]:
        with self._lock, self._pins.editing() as (data, _):
            return data["pending"]
