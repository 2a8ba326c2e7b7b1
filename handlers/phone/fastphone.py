"""fastphone: the same Stream on FastRTC's shared phone number (`python app.py --phone`).

`stream.fastphone()` serves the Stream on a second, loopback-only port, opens a share
tunnel to it and registers the tunnel with FastRTC's phone service, which prints a number
and a code to dial. Callers get the same handler, so the same personas, tool policy and
memory (each call is a caller of its own: the service does not pass the number on). It
needs a Hugging Face token and the internet; without either, one sentence says what is
missing and the rest of the app goes on serving.
"""
from __future__ import annotations

import logging
import threading

from fastrtc import Stream

log = logging.getLogger(__name__)

NO_TOKEN = ("fastphone needs a Hugging Face token: set HF_TOKEN (or run `huggingface-cli login`) and start "
            "again; the page, the API and your own Twilio number keep working meanwhile.")


def start_fastphone(stream: Stream, hf_token: str | None, port: int, say=print) -> threading.Thread | None:
    """Starts fastphone in the background; None (and `say` tells why) when it cannot start."""
    token = hf_token or _saved_token()
    if not token:
        say(NO_TOKEN)
        log.warning(NO_TOKEN)
        return None

    def serve() -> None:
        try:
            stream.fastphone(token=token, host="127.0.0.1", port=port, log_config=None, access_log=False)
        except Exception as exc:  # noqa: BLE001 - fastphone is an extra channel; the app stays up
            message = (f"fastphone could not start ({type(exc).__name__}: {str(exc)[:160]}); it needs the internet "
                       "to reach FastRTC's phone service. The page and the API keep working.")
            say(message)
            log.warning(message)

    thread = threading.Thread(target=serve, name="fastphone", daemon=True)
    thread.start()
    return thread


def _saved_token() -> str | None:
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()
