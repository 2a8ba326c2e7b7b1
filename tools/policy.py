"""Layers 1 and 2: may this persona, on this channel, run this tool now?

Layer 1 is the persona's allowlist (a tool or a whole server by name). Layer 2
is the tool's side-effect level against the channel and persona policy in
servers.yaml: allow, deny, or confirm. A confirmation is bound to the exact
call the user was asked about (same session, tool and arguments), so a
`confirmed` flag cannot be spent on a different call slipped in by injected text.
With Redis the pending confirmations are shared, so the yes may reach any replica.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from redis import Redis

from storage.redis_state import PREFIX
from tools.config import CHANNELS, Policy


class PolicyDenied(PermissionError):
    def __init__(self, layer: str, reason: str, hint: str = "", needs_confirmation: bool = False):
        super().__init__(reason)
        self.layer = layer
        self.reason = reason  # short, for the user
        self.hint = hint  # what the model should do next
        self.needs_confirmation = needs_confirmation


def check_allowlist(tool: str, server: str, persona_id: str, allowed_tools: Iterable[str]) -> None:
    allowed = set(allowed_tools)
    if tool not in allowed and server not in allowed:
        raise PolicyDenied("allowlist", f"{tool} is not one of persona {persona_id}'s tools")


def side_effect_decision(policy: Policy, persona_id: str, channel: str, side_effect: str) -> str:
    if channel not in CHANNELS:
        return "deny"
    return policy.decision(persona_id, channel, side_effect)


def check_side_effect(policy: Policy, persona_id: str, channel: str, side_effect: str) -> str:
    """'allow' or 'confirm'; raises for 'deny'."""
    if channel not in CHANNELS:
        raise PolicyDenied("policy", f"unknown channel '{channel}'")
    decision = policy.decision(persona_id, channel, side_effect)
    if decision == "deny":
        raise PolicyDenied("policy", f"{side_effect.replace('_', '-')} tools are turned off on the "
                                     f"{channel} channel for persona {persona_id}")
    return decision


def call_digest(tool: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{tool}\n{canonical}".encode()).hexdigest()


class ConfirmationBook:
    """Calls waiting for the user's yes, per session; each yes is spent once."""

    def __init__(self, ttl_s: float = 300.0, redis: Redis | None = None):
        self.ttl_s = ttl_s
        self._pending: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        # No fallback to memory here: if Redis fails, the call fails (the gateway says the tool
        # could not be run), which can lose a yes but never spend one twice.
        self._redis = redis

    def _expire(self, now: float) -> None:
        for key in [k for k, expires in self._pending.items() if expires < now]:
            del self._pending[key]

    def require(self, session_id: str, tool: str, arguments: dict[str, Any], confirmed: bool) -> None:
        """Pass if this exact call was asked about and the user confirmed; else ask (raise)."""
        key = (session_id, call_digest(tool, arguments))
        if self._redis is not None:
            name = f"{PREFIX}confirm:{session_id}:{key[1]}"
            if confirmed and self._redis.getdel(name) is not None:  # one replica wins the yes
                return
            self._redis.set(name, b"1", px=max(1, round(self.ttl_s * 1000)))
        else:
            now = time.monotonic()
            with self._lock:
                self._expire(now)
                if confirmed and self._pending.pop(key, None) is not None:
                    return
                self._pending[key] = now + self.ttl_s
        hint = "Tell the user exactly what it will do, ask them, and call it again with the same arguments " \
               "once they say yes."
        if confirmed:
            raise PolicyDenied("policy", f"{tool} needs a fresh confirmation (the yes was for a different or "
                                         f"expired request)", hint, needs_confirmation=True)
        raise PolicyDenied("policy", f"{tool} needs your confirmation first", hint, needs_confirmation=True)
