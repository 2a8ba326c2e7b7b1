"""Personas as OpenAI models (/v1/models), as cards (/v1/personalities), and the
caller's conversations (/v1/chat/sessions)."""
from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, Query

from handlers.api.auth import end_user_id
from handlers.api.errors import ApiError
from handlers.api.schemas import (ERROR_RESPONSES, Deleted, ModelCard, ModelList, Personality, PersonalityList,
                                  Session, SessionCreate, SessionList, SessionMessage, SessionMessageList)
from orchestrator.services import ChatServices
from personas.cards import Persona, PersonaError
from storage.conversations import SessionNotFound

# The end user a session belongs to, as the chat request's `user` names them.
END_USER_QUERY = Query(None, max_length=256, description="An end user of yours")

STARTED = int(datetime.now().timestamp())


def _epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def personality(persona: Persona, deleted: bool = False) -> Personality:
    return Personality(id=persona.id, name=persona.name, language=persona.language, greeting=persona.greeting,
                       allowed_tools=list(persona.allowed_tools), voices=dict(persona.voices), deleted=deleted)


def _session(row: dict) -> Session:
    return Session(id=row["id"], persona_id=row["persona_id"], title=row["title"],
                   created_at=_epoch(row["created_at"]), updated_at=_epoch(row["updated_at"]),
                   message_count=row["message_count"])


def build_catalog_router(services: ChatServices, authenticate, limiter) -> APIRouter:
    router = APIRouter()
    personas = services.orchestrator.personas
    conversations = services.conversations

    def persona_or_404(persona_id: str, param: str) -> Persona:
        try:
            return personas.get(persona_id)
        except PersonaError:
            raise ApiError(404, f"No persona '{persona_id}'.", param=param, code="model_not_found") from None

    def session_or_404(user_id: str, session_id: str) -> dict:
        try:
            return conversations.session(user_id, session_id)
        except SessionNotFound:
            raise ApiError(404, f"No session '{session_id}'.", param="session_id",
                           code="session_not_found") from None

    @router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES,
                operation_id="listModels")
    async def list_models(user_id: str = Depends(authenticate)) -> ModelList:
        return ModelList(data=[ModelCard(id=p.id, created=STARTED) for p in personas.all()])

    @router.get("/v1/models/{model}", response_model=ModelCard, responses=ERROR_RESPONSES,
                operation_id="retrieveModel")
    async def retrieve_model(model: str, user_id: str = Depends(authenticate)) -> ModelCard:
        return ModelCard(id=persona_or_404(model, "model").id, created=STARTED)

    @router.get("/v1/personalities", response_model=PersonalityList, responses=ERROR_RESPONSES,
                operation_id="listPersonalities")
    async def list_personalities(user_id: str = Depends(authenticate)) -> PersonalityList:
        return PersonalityList(data=[personality(p) for p in personas.all()])

    @router.get("/v1/personalities/{persona_id}", response_model=Personality, responses=ERROR_RESPONSES,
                operation_id="retrievePersonality")
    async def get_personality(persona_id: str, user_id: str = Depends(authenticate)) -> Personality:
        gone = personas.deleted(persona_id) if personas.path_of(persona_id) is None else None
        if gone is not None:  # still readable: old conversations name it
            return personality(gone, deleted=True)
        return personality(persona_or_404(persona_id, "persona_id"))

    @router.post("/v1/chat/sessions", response_model=Session, responses=ERROR_RESPONSES,
                 operation_id="createChatSession")
    async def create_session(body: SessionCreate, user_id: str = Depends(authenticate)) -> Session:
        limiter.request(user_id)
        user_id = end_user_id(user_id, body.user)
        persona = persona_or_404(body.persona_id, "persona_id") if body.persona_id else personas.get(None)
        session_id = await asyncio.to_thread(conversations.create_session, user_id, persona.id, body.title)
        return _session(await asyncio.to_thread(conversations.session, user_id, session_id))

    @router.get("/v1/chat/sessions", response_model=SessionList, responses=ERROR_RESPONSES,
                operation_id="listChatSessions")
    async def list_sessions(user_id: str = Depends(authenticate),
                            user: str | None = END_USER_QUERY) -> SessionList:
        user_id = end_user_id(user_id, user)
        rows = await asyncio.to_thread(conversations.sessions, user_id)
        return SessionList(data=[_session(row) for row in rows])

    @router.get("/v1/chat/sessions/{session_id}", response_model=Session, responses=ERROR_RESPONSES,
                operation_id="retrieveChatSession")
    async def get_session(session_id: str, user_id: str = Depends(authenticate),
                            user: str | None = END_USER_QUERY) -> Session:
        user_id = end_user_id(user_id, user)
        return _session(await asyncio.to_thread(session_or_404, user_id, session_id))

    @router.get("/v1/chat/sessions/{session_id}/messages", response_model=SessionMessageList,
                responses=ERROR_RESPONSES, operation_id="listChatSessionMessages")
    async def list_messages(session_id: str, user_id: str = Depends(authenticate),
                            limit: int = Query(100, ge=1, le=1000),
                            user: str | None = END_USER_QUERY) -> SessionMessageList:
        user_id = end_user_id(user_id, user)
        await asyncio.to_thread(session_or_404, user_id, session_id)
        rows = await asyncio.to_thread(conversations.messages, user_id, session_id)
        return SessionMessageList(data=[SessionMessage(id=r["id"], role=r["role"], content=r["content"],
                                                       created_at=_epoch(r["created_at"])) for r in rows[-limit:]])

    @router.delete("/v1/chat/sessions/{session_id}", response_model=Deleted, responses=ERROR_RESPONSES,
                   operation_id="deleteChatSession")
    async def delete_session(session_id: str, user_id: str = Depends(authenticate),
                            user: str | None = END_USER_QUERY) -> Deleted:
        user_id = end_user_id(user_id, user)
        try:
            await asyncio.to_thread(conversations.delete_session, user_id, session_id)
        except SessionNotFound:
            raise ApiError(404, f"No session '{session_id}'.", param="session_id",
                           code="session_not_found") from None
        return Deleted(id=session_id, object="chat.session.deleted", deleted=True)

    @router.get("/v1/users/me", responses=ERROR_RESPONSES, operation_id="retrieveMyData")
    async def my_data(user_id: str = Depends(authenticate), user: str | None = END_USER_QUERY) -> dict:
        """Everything stored about you (or your end user `?user=`): conversations, memories,
        profile, documents and tool calls."""
        limiter.request(user_id)
        return await asyncio.to_thread(services.personal_data.shown, end_user_id(user_id, user))

    @router.delete("/v1/users/me", responses=ERROR_RESPONSES, operation_id="deleteMyData")
    async def forget_me(user_id: str = Depends(authenticate), user: str | None = END_USER_QUERY) -> dict:
        """Erase everything stored about you (or your end user `?user=`): deleted, not hidden."""
        limiter.request(user_id)
        who = end_user_id(user_id, user)
        outcome = await asyncio.to_thread(services.personal_data.erase, who)
        return {"id": who, "object": "user.deleted", "deleted": True, **outcome}

    return router
