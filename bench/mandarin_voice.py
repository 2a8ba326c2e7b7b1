"""Mandarin against English in one run, offline, on this machine.

1. Speech recognition time per second of speech: Whisper tiny.en on English (the English
   path) against Whisper base on the Chinese question (the Mandarin path), in process.
2. End of speech -> first reply audio at a websocket client, against the real app: the
   English question to Cozy (Piper) and the Chinese one to Xiaobei (Kokoro), alternating,
   each on a new connection, a different country each turn so no reply is replayed from the
   phrase cache.

Medians; the ratio is Mandarin over English.

    flock /tmp/bench.lock .venv/bin/python bench/mandarin_voice.py [--turns 5] [--stt-runs 7]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import AudioClip  # noqa: E402
from providers.offline.stt import WhisperSTT  # noqa: E402
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip  # noqa: E402
from tests.conftest import isolated_env, start_app, stop_app  # noqa: E402
from tests.test_mandarin import QUESTION_EN, QUESTION_ZH  # noqa: E402

# Different questions each turn, so no reply comes from the phrase cache.
COUNTRIES = [("France", "fa4guo2"), ("Japan", "ri4ben3"), ("Germany", "de2guo2"), ("England", "ying1guo2"),
             ("Italy", "yi4da4li4")]
PATHS = {"english": ("companion", lambda i: espeak_clip(QUESTION_EN.replace("France", COUNTRIES[i % 5][0]))),
         "mandarin": ("xiaobei", lambda i: espeak_clip(QUESTION_ZH.replace("fa4guo2", COUNTRIES[i % 5][1]),
                                                       voice="cmn-latn-pinyin"))}


def stt_seconds_per_second(runs: int) -> dict[str, float]:
    models_dir = Settings.from_env().models_dir
    english = WhisperSTT(model_files.resolve("whisper-tiny.en", models_dir).parent)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        model_files.resolve(f"whisper-base/{name}", models_dir)
    multilingual = WhisperSTT(model_files.resolve("whisper-base", models_dir).parent)
    cases = {"english (tiny.en)": (english, PATHS["english"][1](0), "en"),
             "mandarin (base, zh)": (multilingual, PATHS["mandarin"][1](0), "zh"),
             "detected (base, auto) on the Chinese clip": (multilingual, PATHS["mandarin"][1](0), None)}
    results = {}
    for label, (model, clip, language) in cases.items():
        model.transcribe(AudioClip(16_000, clip), language)  # warm
        spent = []
        for _ in range(runs):
            started = time.perf_counter()
            model.transcribe(AudioClip(16_000, clip), language)
            spent.append((time.perf_counter() - started) / (len(clip) / 16_000))
        results[label] = statistics.median(spent)
    return results


async def first_audio(base_url: str, persona: str, clip) -> tuple[float | None, dict]:
    async with VoiceWebsocketClient(base_url) as client:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            await http.post("/voice/settings", json={"webrtc_id": client.websocket_id, "persona_id": persona})
        turn = await client.speak(clip, listen_s=60)
        return turn.first_audio_latency_s, turn.last_turn().get("stages_s", {})


async def voice_latency(base_url: str, turns: int) -> dict[str, list]:
    seen: dict[str, list] = {path: [] for path in PATHS}
    for turn in range(turns):
        for path, (persona, clip) in PATHS.items():
            seen[path].append(await first_audio(base_url, persona, clip(turn)))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--stt-runs", type=int, default=7)
    args = parser.parse_args()

    stt = stt_seconds_per_second(args.stt_runs)
    print("speech recognition, seconds per second of speech (median):")
    for label, value in stt.items():
        print(f"  {label:45s} {value:.3f}")
    print(f"  ratio mandarin / english: {stt['mandarin (base, zh)'] / stt['english (tiny.en)']:.2f}x")

    with tempfile.TemporaryDirectory() as folder:
        app = start_app(Path(folder), isolated_env(Path(folder) / "data"))
        try:
            seen = asyncio.run(voice_latency(app.base_url, args.turns))
        finally:
            stop_app(app)
    print("\nend of speech -> first reply audio at the client (median ms over %d turns):" % args.turns)
    medians = {}
    for path, results in seen.items():
        firsts = [r[0] for r in results if r[0] is not None]
        medians[path] = statistics.median(firsts) if firsts else float("nan")
        stages = {key: statistics.median([r[1][key] for r in results if key in r[1]]) * 1000
                  for key in ("endpointing_s", "stt_s", "llm_first_piece_s", "tts_first_audio_s")
                  if any(key in r[1] for r in results)}
        print(f"  {path:9s} first audio {medians[path] * 1000:6.0f}   "
              + "  ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in stages.items()))
    print(f"  ratio mandarin / english: {medians['mandarin'] / medians['english']:.2f}x")


if __name__ == "__main__":
    main()
