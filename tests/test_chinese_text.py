"""Chinese text is searchable in memory and knowledge (no spaces between its words), and
prompt budgets count it fairly; every search stays inside its owner's data. Real DuckDB."""
from __future__ import annotations

import pytest

from memory.chat_memory import LocalChatMemory
from memory.facts import Fact
from memory.knowledge import LocalKnowledge
from orchestrator.context import estimate_tokens
from personas.cards import MemoryPolicy
from storage.term_index import terms_of
from tests.conftest import new_store

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

GUIDE = """# 茶

绿茶不发酵，味道清新。红茶是全发酵茶，适合加牛奶。

# 天文

土星有明显的光环，由冰和岩石组成。木星是太阳系最大的行星。
"""


@pytest.fixture
def db(tmp_path):
    database = new_store(tmp_path)
    yield database
    database.close()


def test_a_chinese_question_finds_its_passage_and_only_for_the_owner(db):
    knowledge = LocalKnowledge(db)
    knowledge.add_document("ada", "指南", GUIDE)
    [best, *_] = knowledge.search("ada", "土星的光环是什么做的？")
    assert "土星" in best.content and "冰和岩石" in best.content
    assert "绿茶" in knowledge.search("ada", "哪种茶不发酵")[0].content
    assert knowledge.search("bob", "土星的光环是什么做的？") == []


def test_a_chinese_memory_is_recalled_by_a_chinese_question_and_by_no_one_else(db):
    memory = LocalChatMemory(db)
    db.write(lambda cursor: LocalChatMemory.remember(
        cursor, "ada", "companion", [Fact("preferences", "用户喜欢天文学，尤其是土星。")], MemoryPolicy(), "m1"))
    assert memory.recall("ada", "我喜欢哪个行星？土星吗") == ["用户喜欢天文学，尤其是土星。"]
    assert memory.recall("bob", "我喜欢哪个行星？土星吗") == []


def test_chinese_is_split_into_character_pairs_and_english_still_into_words():
    assert terms_of("土星光环") == ["土星", "星光", "光环"]
    assert "astronomy" in terms_of("I love astronomy 和 天文") and "天文" in terms_of("I love astronomy 和 天文")
    assert terms_of("你的") == []  # particles alone are no topic


def test_a_prompt_budget_counts_chinese_at_about_a_token_a_character():
    chinese = "绿茶不发酵，味道清新。" * 20
    assert estimate_tokens(chinese) >= len(chinese)  # chars/4 would let four times too much in
    assert estimate_tokens("hello there, how are you") < 12


def test_chinese_facts_are_found_and_a_question_is_not_taken_for_one():
    from memory.facts import extract_facts

    told = {(f.profile_key, f.profile_value) for f in extract_facts("我叫李雷，我喜欢天文学。我住在上海")}
    assert told == {("name", "李雷"), ("likes", "天文学"), ("location", "上海")}
    assert extract_facts("我叫什么名字？") == [] and extract_facts("你喜欢什么？") == []
    assert [f.memory for f in extract_facts("我不喜欢下雨。")] == ["不喜欢下雨"]
