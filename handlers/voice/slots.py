"""One concurrency limit over every voice connection: websocket, phone and WebRTC.

FastRTC 0.0.34 keeps its own books in two places per holder (the Stream, and the
Gradio WebRTC component of the UI): `connections` (started websockets and WebRTC
peers with a track) and `pcs` (WebRTC peers from the moment of their offer).
Phone calls are filed nowhere, and each holder checks only its own `pcs` against
the limit. So the count here is the union of every holder's ids plus the guarded
websockets still before (or outside) FastRTC's books; the WebRTC offer of every
holder is wrapped so it is refused once the union is full, and so a failed offer
cannot leave a peer behind.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class VoiceSlots:
    def __init__(self, limit: int, holders: list[Any] | None = None):
        self.limit = limit
        self.holders: list[Any] = list(holders or [])
        self.guarded = 0  # guarded websockets holding a slot (from accept to close)
        self.websocket_ids: set[str] = set()  # of those, the ids FastRTC also files once started

    def add_holder(self, holder: Any) -> None:
        self.holders.append(holder)

    def _filed_ids(self) -> set[str]:
        ids: set[str] = set()
        for holder in self.holders:
            ids.update(getattr(holder, "connections", {}) or {})
            ids.update(getattr(holder, "pcs", {}) or {})
        return ids

    def open_count(self) -> int:
        return len(self._filed_ids() - self.websocket_ids) + self.guarded

    def busy(self) -> bool:
        return self.open_count() >= self.limit

    def id_in_use(self, connection_id: str) -> bool:
        return connection_id in self._filed_ids() or connection_id in self.websocket_ids

    def release_websocket(self, connection_id: str, holder: Any) -> None:
        """Undo whatever FastRTC filed for a websocket that has ended, however it ended.

        FastRTC's `handle_websocket` closes the socket before its `clean_up`, and the
        close raises when the client has gone first, so its clean-up may never run."""
        self.websocket_ids.discard(connection_id)
        if connection_id in getattr(holder, "connections", {}):
            try:
                holder.clean_up(connection_id)
            except Exception:  # noqa: BLE001 - the slot must come back even if a handler's shutdown fails
                log.warning("clean-up of voice connection failed; dropping its entry", exc_info=True)
                holder.connections.pop(connection_id, None)


def _refusal(limit: int) -> JSONResponse:
    # FastRTC's own shape for this refusal, which its browser client understands.
    return JSONResponse(status_code=200, content={"status": "failed", "meta": {
        "error": "concurrency_limit_reached", "limit": limit}})


def guard_webrtc_offers(holder: Any, slots: VoiceSlots) -> None:
    """Wrap one holder's `handle_offer` so WebRTC shares the one count.

    The check and FastRTC's filing of the peer run with no await in between, so two
    offers cannot both take the last slot."""
    original = holder.handle_offer

    async def handle_offer(body: dict, set_outputs: Any) -> Any:
        is_offer = isinstance(body, dict) and body.get("type") == "offer"
        if is_offer and body.get("webrtc_id") not in slots._filed_ids() and slots.busy():
            log.info("refusing a WebRTC offer: %d connections is the limit", slots.limit)
            return _refusal(slots.limit)
        webrtc_id = body.get("webrtc_id") if isinstance(body, dict) else None
        try:
            answer = await original(body, set_outputs)
        except asyncio.CancelledError:
            if is_offer:
                await _forget_peer(holder, webrtc_id)
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. SDP that aiortc cannot parse: the client's error
            if not is_offer:
                raise
            await _forget_peer(holder, webrtc_id)
            log.info("refusing a WebRTC offer that could not be answered: %s", type(exc).__name__)
            return JSONResponse(status_code=400, content={"status": "failed", "meta": {
                "error": "invalid_offer", "message": "the offer's SDP could not be read"}})
        if is_offer and not (isinstance(answer, dict) and answer.get("sdp")) \
                and not isinstance(answer, JSONResponse):
            await _forget_peer(holder, webrtc_id)  # no answer: no peer will ever connect
        return answer

    holder.handle_offer = handle_offer
    slots.add_holder(holder)


async def _forget_peer(holder: Any, webrtc_id: str | None) -> None:
    pc = holder.pcs.get(webrtc_id) if webrtc_id is not None else None
    if pc is None:
        return
    try:
        await pc.close()
    finally:
        holder.clean_up(webrtc_id)


def on_connection_end(holder: Any, callback: Any) -> None:
    """Call `callback(connection_id)` whenever FastRTC cleans a connection up (WebRTC included)."""
    original = holder.clean_up

    def clean_up(connection_id: str) -> Any:
        try:
            return original(connection_id)
        finally:
            callback(connection_id)

    holder.clean_up = clean_up
