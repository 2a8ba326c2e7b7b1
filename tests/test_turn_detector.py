"""End-of-turn detection on VAD probabilities, window by window."""
from handlers.voice.turn_detector import TurnDetector, TurnDetectorOptions, TurnEvent

W = 0.032


def windows(seconds: float, probability: float) -> list[float]:
    return [probability] * round(seconds / W)


def run(*parts: list[float], **options) -> list[tuple[int, TurnEvent]]:
    detector = TurnDetector(TurnDetectorOptions(**options))
    events, index = [], 0
    for part in parts:
        for p in part:
            events += [(index, e) for e in detector.feed([p])]
            index += 1
    return events


def test_turn_ends_after_the_configured_silence():
    events = run(windows(1.0, 0.9), windows(1.0, 0.05), end_of_turn_silence_s=0.5)
    kinds = [e for _, e in events]
    assert kinds == [TurnEvent.SPEECH_STARTED, TurnEvent.PAUSE_STARTED, TurnEvent.TURN_ENDED]
    speech_windows = round(1.0 / W)
    ended_at = events[-1][0]
    assert (ended_at - speech_windows + 1) * W >= 0.5 - W
    assert (ended_at - speech_windows + 1) * W <= 0.5 + W


def test_a_click_is_not_a_turn():
    assert run(windows(0.1, 0.9), windows(2.0, 0.0)) == []


def test_a_short_pause_inside_a_sentence_does_not_end_the_turn():
    events = [e for _, e in run(windows(0.6, 0.9), windows(0.3, 0.1), windows(0.6, 0.9),
                                windows(0.7, 0.0), end_of_turn_silence_s=0.5)]
    assert events == [TurnEvent.SPEECH_STARTED, TurnEvent.PAUSE_STARTED, TurnEvent.SPEECH_RESUMED,
                      TurnEvent.PAUSE_STARTED, TurnEvent.TURN_ENDED]


def test_endless_speech_is_cut_at_the_maximum():
    events = run(windows(3.0, 0.9), max_turn_s=1.0)
    ends = [i for i, e in events if e is TurnEvent.TURN_ENDED]
    assert len(ends) == 2  # at ~1.0 s and ~2.0 s; the third turn is still open at 3.0 s
    assert abs(ends[0] * W - 1.0) <= 2 * W and abs((ends[1] - ends[0]) * W - 1.0) <= 2 * W


def test_the_model_is_asked_with_the_early_transcript_and_heard_after_the_shortest_silence():
    detector = TurnDetector(TurnDetectorOptions(end_of_turn="smart", check_silence_s=0.1, earliest_end_s=0.2))
    assert detector.feed(windows(0.5, 0.9)) == [TurnEvent.SPEECH_STARTED]
    # The early transcript first: the check reads its words.
    assert detector.feed(windows(0.128, 0.0)) == [TurnEvent.PAUSE_STARTED, TurnEvent.CHECK_TURN]
    pause = detector.pause_index
    assert detector.in_pause(pause) and detector.too_soon(pause)
    detector.feed(windows(0.064, 0.0))
    assert detector.too_soon(pause)
    detector.feed(windows(0.032, 0.0))  # 0.224 s of silence
    assert detector.in_pause(pause) and not detector.too_soon(pause)
    detector.feed(windows(0.064, 0.9))  # they speak again: that verdict is stale
    assert not detector.in_pause(pause) and not detector.too_soon(pause)
