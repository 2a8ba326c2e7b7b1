"""Who a tool server is told it serves: a stable pseudonym per server.

A third-party server needs to tell its users apart (its own per-user state), not
to know who they are. An HMAC of the user id under a key of ours, mixed with the
server's name, is stable for that server, differs between servers (two servers
cannot join their records), and reveals nothing without the key.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


class Pseudonyms:
    def __init__(self, key_path: Path):
        self.key_path = key_path
        self._key: bytes | None = None

    def _load_key(self) -> bytes:
        if self._key is None:
            try:
                self._key = bytes.fromhex(self.key_path.read_text().strip())
            except FileNotFoundError:
                self.key_path.parent.mkdir(parents=True, exist_ok=True)
                key = secrets.token_bytes(32)
                # Created 0600 from the start: the key is what keeps the pseudonyms opaque.
                try:
                    fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:  # another process made it first: use theirs
                    return self._load_key()
                with os.fdopen(fd, "w") as handle:
                    handle.write(key.hex())
                self._key = key
        return self._key

    def of(self, server: str, kind: str, value: str) -> str:
        digest = hmac.new(self._load_key(), f"{server}\0{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0]}-{digest[:32]}"
