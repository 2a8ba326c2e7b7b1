"""What one turn's record and its metrics cost: building the record of a voice turn
with a fallback (the stages a real turn has), storing it as JSON, and observing it
into the Prometheus metrics. Median microseconds per turn over many turns.

    .venv/bin/python bench/turn_record_cost.py [turns]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.api.metrics import observe_turn_record  # noqa: E402
from orchestrator.turn_record import TurnRecord  # noqa: E402
from providers.call_log import CallLog, FailedAttempt  # noqa: E402

DEFAULT_TURNS = 5000


def voice_turn_record() -> TurnRecord:
    """The stages of a voice turn whose model call fell back from OpenAI to Groq."""
    llm = CallLog("groq", "llama-3.1-8b-instant",
                  [FailedAttempt("openai", "openai: HTTP 500: injected failure", "status_500")])
    stt, tts = CallLog("groq", "whisper-large-v3-turbo"), CallLog("elevenlabs", "eleven_flash_v2_5")
    record = TurnRecord("voice")
    record.add("endpointing", 0.21)
    record.add("stt", 0.18, stt, audio_in_s=2.4)
    record.add("context", 0.012)
    for engine in ("knowledge", "profile", "memory"):
        record.add(f"context_{engine}", 0.004)
    record.add("moderation", 0.0003, CallLog("offline", "offline"))
    record.add("llm_first_token", 0.31, llm)
    record.add("llm", 0.92, llm, tokens_in=412, tokens_out=38)
    record.add("tts_first_audio", 0.14, tts)
    record.add("tts", 0.6, tts, characters=164, audio_out_s=9.8)
    record.add("first_audio", 0.95)
    record.add("turn", 11.2)
    return record


def main() -> None:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TURNS
    build_us, store_us, observe_us = [], [], []
    for _ in range(turns):
        started = time.perf_counter()
        record = voice_turn_record()
        built = time.perf_counter()
        json.dumps({"record": record.as_dict()})
        stored = time.perf_counter()
        observe_turn_record(record)
        observed = time.perf_counter()
        build_us.append((built - started) * 1e6)
        store_us.append((stored - built) * 1e6)
        observe_us.append((observed - stored) * 1e6)
    print(f"{turns} voice turns of {len(voice_turn_record().stages)} stages, median per turn:")
    for label, values in (("build the record", build_us), ("as JSON for the message", store_us),
                          ("observe into /metrics", observe_us)):
        print(f"  {label:26} {statistics.median(values):8.1f} µs")
    total = [b + s + o for b, s, o in zip(build_us, store_us, observe_us)]
    print(f"  {'total':26} {statistics.median(total):8.1f} µs")


if __name__ == "__main__":
    main()
