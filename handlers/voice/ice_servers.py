"""ICE servers for WebRTC: without TURN, a browser behind NAT (and a Space, always)
often cannot reach us. Our own TURN server from config, or short-lived credentials
from Hugging Face's TURN service (via FastRTC's helper) when HF_TOKEN is set."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from config import TurnServerSettings

log = logging.getLogger(__name__)

RtcConfiguration = dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]] | None


def rtc_configuration(turn: TurnServerSettings) -> RtcConfiguration:
    """What the browser's RTCPeerConnection gets; None when there is no TURN server."""
    if turn.urls:
        server: dict[str, Any] = {"urls": list(turn.urls)}
        if turn.username:
            server["username"] = turn.username
        if turn.credential:
            server["credential"] = turn.credential
        return {"iceServers": [server]}
    if turn.hf_token:
        token = turn.hf_token

        # A plain `async def` (not a partial): FastRTC calls it per connection only if it is
        # a function, and HF's credentials expire, so each connection gets fresh ones.
        async def hf_turn_credentials() -> dict[str, Any]:
            from fastrtc import get_cloudflare_turn_credentials_async

            try:
                return await get_cloudflare_turn_credentials_async(hf_token=token)
            except Exception as exc:  # noqa: BLE001 - without TURN, voice may still connect directly
                log.warning("could not get TURN credentials from Hugging Face: %s", exc)
                return {}

        return hf_turn_credentials
    return None
