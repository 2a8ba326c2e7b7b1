from handlers.voice.sentences import SentenceChunker, clean_for_speech
from orchestrator.sentences import SentenceSplitter


def chunk(text: str, step: int = 3) -> list[str]:
    chunker, pieces = SentenceChunker(), []
    for i in range(0, len(text), step):
        pieces += chunker.push(text[i:i + step])
    return pieces + chunker.flush()


def test_first_piece_is_cut_at_an_early_clause_then_whole_sentences():
    pieces = chunk("Well, the capital of France is Paris, a lovely city. It sits on the Seine, which is long.")
    assert pieces == ["Well, the capital of France", "is Paris, a lovely city.",
                      "It sits on the Seine, which is long."]
    assert chunk("Well, my dear friend, the capital is Paris.") == ["Well, my dear friend,", "the capital is Paris."]


def test_a_long_rest_of_the_first_sentence_is_cut_once_more_so_the_voice_does_not_fall_silent():
    assert chunk("On a clear May day, the sky is usually a light blue or sky blue color. It is nice.") == [
        "On a clear May day,", "the sky is usually a light blue", "or sky blue color.", "It is nice."]
    # Later sentences stay whole, however long.
    assert chunk("Yes. The sky is usually a light blue or sky blue color, and it changes.") == [
        "Yes.", "The sky is usually a light blue or sky blue color, and it changes."]


def test_decimals_and_unfinished_text_are_not_cut():
    assert chunk("It costs 3.5 dollars today! And") == ["It costs 3.5 dollars today!", "And"]


def test_markdown_is_not_read_aloud():
    assert clean_for_speech("**Paris** is `big` — see [the map](http://x)") == "Paris is big — see the map"


def test_a_very_long_sentence_is_split_at_a_word():
    pieces = chunk("word " * 100)
    assert all(len(p) <= 220 for p in pieces) and " ".join(pieces).split() == ["word"] * 100


def test_chinese_is_cut_at_its_own_marks_with_no_space_after_them():
    splitter = SentenceSplitter()
    pieces = [p for ch in "法国的首都是巴黎，那里有埃菲尔铁塔。它很美！你去过吗？" for p in splitter.push(ch)]
    assert pieces == ["法国的首都是巴黎，", "那里有埃菲尔铁塔。", "它很美！", "你去过吗？"]
    assert splitter.push("你好，") == [] and splitter.flush() == ["你好，"]  # too short a first clause to cut


def test_english_and_chinese_mixed_keep_every_character():
    splitter = SentenceSplitter()
    text = "Paris is the capital. 巴黎是首都。 It is 3.5 km wide"
    pieces = splitter.push(text) + splitter.flush()
    assert "".join(pieces) == text and pieces[1] == "巴黎是首都。 "


def test_a_chinese_sentence_piece_closes_its_sentence_for_moderation():
    from orchestrator.sentences import ends_sentence

    assert ends_sentence("那里有埃菲尔铁塔。") and ends_sentence("你去过吗？") and ends_sentence("It is. ")
    assert not ends_sentence("法国的首都是巴黎，") and not ends_sentence("The sky on a clear day ")
