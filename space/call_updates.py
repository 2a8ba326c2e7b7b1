"""The page's view of a voice call follows the call's newest update.

FastRTC's `on_additional_outputs` hands the page one queued update per "fetch_output"
message, and its event runs with trigger_mode="once", so messages that arrive while one
runs are dropped. A turn queues an update per sentence (and per tool, and per state), so
the page fell behind and stayed behind: a call that had finished speaking still showed
"Speaking", and the next turn's first states were old ones. Each update here is a whole
snapshot (transcript and turn), so the newest one is all the page needs: take every
update waiting, show the last, and run once more when more arrive meanwhile.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr
from fastrtc import WebRTC

WAIT_S = 0.5  # a trigger whose update was taken by the run before it waits this long, then skips


def on_call_updates(voice: WebRTC, fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any]):
    """Like `voice.on_additional_outputs(fn, inputs, outputs)`, showing only the newest update."""

    async def newest(webrtc_data: Any, *values: Any):
        webrtc_id = getattr(webrtc_data, "webrtc_id", webrtc_data)
        # .get, not [..]: the connection's queue is a defaultdict entry, and a late
        # trigger for a call that has ended must not create one again.
        waiting = voice.additional_outputs.get(webrtc_id) if isinstance(webrtc_id, str) else None
        if waiting is None:
            return [gr.skip()] * len(outputs)
        try:
            latest = await asyncio.wait_for(waiting.queue.get(), WAIT_S)
        except (asyncio.TimeoutError, TimeoutError):
            return [gr.skip()] * len(outputs)
        while not waiting.queue.empty():
            latest = waiting.queue.get_nowait()
        return fn(*values, *latest.args)

    return voice.state_change(fn=newest, inputs=[voice, *inputs], outputs=list(outputs), queue=False,
                              show_progress="hidden", trigger_mode="always_last")
