"""Builds the orchestrator with its storage and context engines, and closes them in order."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from config import Settings
from memory.chat_memory import LocalChatMemory
from memory.knowledge import LocalKnowledge
from memory.learner import MemoryLearner
from memory.user_profile import LocalUserProfile
from orchestrator.chat import ChatOrchestrator, OnRecord, ToolRunner
from orchestrator.context import ContextGatherer, ContextTimeouts
from orchestrator.moderation import ModerationGate, OnFlag
from orchestrator.pricing import PriceTable
from orchestrator.turn_record import TurnRecord
from personas.cards import PersonaCatalog
from providers.base import ChatModel
from providers.moderation.base import Moderator
from providers.moderation.chain import build_moderation
from storage.audit import DuckDbAuditSink
from storage.conversations import ConversationStore
from storage.backends import Store, open_database
from storage.erasure import PersonalData
from storage.usage import UsageStore

log = logging.getLogger(__name__)


@dataclass
class ChatServices:
    db: Store
    conversations: ConversationStore
    memory: LocalChatMemory
    profile: LocalUserProfile
    knowledge: LocalKnowledge
    learner: MemoryLearner
    context: ContextGatherer
    orchestrator: ChatOrchestrator
    personal_data: PersonalData  # what a user may see and erase; the host adds the tool servers
    usage: UsageStore  # each user's daily totals, and their budget

    def close(self) -> None:
        """Learn from every saved turn, then checkpoint and close the database."""
        self.learner.stop()
        self.context.close()
        self.db.close()


def build_chat_services(settings: Settings, personas: PersonaCatalog, model: ChatModel,
                        tools: ToolRunner | None = None, context_budget_tokens: int | None = None,
                        context: ContextGatherer | None = None, moderator: Moderator | None = None,
                        on_moderation_flag: OnFlag | None = None, on_record: OnRecord | None = None) -> ChatServices:
    """`moderator` defaults to the chain the environment configures (OpenAI's
    endpoint with OPENAI_API_KEY, the offline lists always); its flags are audited
    in this database and passed to `on_moderation_flag` (the host's metrics), as each
    finished turn's record is passed to `on_record`, priced and added to its user's usage first."""
    prices = PriceTable.load(settings.usage.prices_path)  # a bad file stops the start, naming the field
    db = open_database(settings.database_path, settings.db_url)
    usage = UsageStore(db, settings.usage.daily_budget_tokens, settings.usage.daily_budget_usd)

    def account(record: TurnRecord) -> None:
        usage.add(record.user_id, record)  # priced by the orchestrator before it reports
        if on_record is not None:
            on_record(record)
    conversations = ConversationStore(db)
    memory, profile, knowledge = LocalChatMemory(db), LocalUserProfile(db), LocalKnowledge(db)
    learner = MemoryLearner(db, personas).start()
    c = settings.context
    context = context or ContextGatherer(memory, profile, knowledge,
                                         ContextTimeouts(c.knowledge_timeout_s, c.profile_timeout_s,
                                                         c.memory_timeout_s))
    context_tokens = context_budget_tokens or int(settings.models.llm_context_tokens * 0.75)
    moderation = ModerationGate(moderator or build_moderation(settings.moderation, os.environ),
                                DuckDbAuditSink(db), on_moderation_flag)
    orchestrator = ChatOrchestrator(personas, model, conversations, context, learner, tools, context_tokens, moderation,
                                    account, budget=usage, prices=prices)
    return ChatServices(db, conversations, memory, profile, knowledge, learner, context, orchestrator,
                        PersonalData(db), usage)
