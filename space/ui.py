"""The Gradio Blocks page around the voice Stream (also the Hugging Face Space UI)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from fastrtc import Stream, WebRTC

from memory.knowledge import KnowledgeError
from orchestrator.services import ChatServices
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest
from personas.cards import PersonaCatalog, PersonaError
from handlers.visitor_limits import LimitReached, VisitorLimiter
from handlers.visitors import BrowserIdentity
from handlers.voice_identity import TokenRejected, VoiceIdentities
from space.views import (audit_view, documents_view, erased_view, identity_view, latency_table, profile_view,
                         session_choices, stored_view, tools_view, transcript_of)
from storage.conversations import SessionNotFound

log = logging.getLogger(__name__)

NO_IDENTITY = "Your visitor identity is missing or expired: reload the page."
NO_TURN_NOTE = ("⚠️ This server has no TURN relay, so voice may not connect from your network. Typing always "
                "works, and voice clients can use the websocket route `/voice/websocket/offer`.")


@dataclass(frozen=True)
class PageAccess:
    """Who the page serves and what one visitor may use (see handlers/visitors.py)."""

    browser: BrowserIdentity
    identities: VoiceIdentities
    limiter: VisitorLimiter | None = None  # None: a local console, no per-visitor limits
    upload_bytes: int = 2_000_000
    login_button: bool = False  # Hugging Face OAuth is available (a Space with hf_oauth)
    voice_note: str = ""  # shown above the microphone, e.g. that voice may not connect


def build_ui(stream: Stream, services: ChatServices, personas: PersonaCatalog,
             model_names: dict[str, str], gateway, audit, access: PageAccess,
             guard_voice: Callable[[WebRTC], None] | None = None) -> gr.Blocks:
    """`guard_voice` gets the page's WebRTC component, whose peers FastRTC books apart
    from the Stream's: the host puts them under the one voice-connection limit.
    Every event reads its visitor from its own request: nothing on the page is shared."""
    conversations = services.conversations
    default_persona = personas.get(None).id

    def who(request: gr.Request | None) -> str:
        user = access.browser.of(request)
        if user is None:
            raise gr.Error(NO_IDENTITY)
        return user

    def describe(persona_id: str) -> str:
        try:
            persona = personas.get(persona_id)
        except PersonaError as exc:
            return f"⚠️ {exc}"
        return f"**{persona.name}** — _{persona.greeting}_"

    def persona_tools(persona_id: str) -> str:
        try:
            return tools_view(gateway.catalog.entries(), personas.get(persona_id).allowed_tools)
        except PersonaError as exc:
            return f"⚠️ {exc}"

    def recent_tool_calls(request: gr.Request) -> str:
        return audit_view(audit.recent(who(request), 25))

    def sessions_update(user: str, selected: str | None):
        return gr.update(choices=session_choices(conversations.sessions(user)), value=selected)

    def memory_markdown(request: gr.Request) -> str:
        user = who(request)
        return profile_view(services.profile.get(user), services.memory.list(user, 50))

    def page_for_visitor(request: gr.Request):
        """Everything on the page that belongs to someone, filled in for this visitor."""
        user = access.browser.of(request)
        if user is None:
            return (NO_IDENTITY, gr.update(choices=[], value=None), "", "", "")
        return (identity_view(user, access.browser.public), sessions_update(user, None),
                profile_view(services.profile.get(user), services.memory.list(user, 50)),
                documents_view(services.knowledge.documents(user)), audit_view(audit.recent(user, 25)))

    def open_session(session_id: str | None, request: gr.Request):
        if not session_id:
            return None, []
        try:
            return session_id, transcript_of(conversations.messages(who(request), session_id))
        except SessionNotFound:
            gr.Warning("That conversation no longer exists.")
            return None, []

    def new_session(request: gr.Request):
        return None, [], sessions_update(who(request), None)

    def delete_session(session_id: str | None, request: gr.Request):
        user = who(request)
        if session_id:
            try:
                conversations.delete_session(user, session_id)
            except SessionNotFound:
                pass
        return None, [], sessions_update(user, None)

    def type_turn(message: str, persona_id: str, session_id: str | None, chat: list[dict],
                  request: gr.Request) -> Iterator[tuple]:
        message = (message or "").strip()
        if not message:
            yield "", session_id, chat, gr.skip()
            return
        user = who(request)
        chat = chat + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        try:
            if access.limiter is not None:
                access.limiter.message(user)
        except LimitReached as limit:
            chat[-1]["content"] = f"⏳ {limit}"
            yield message, session_id, chat, gr.skip()  # the words stay in the box to send later
            return
        turn = TurnRequest(text=message, user_id=user, session_id=session_id, persona_id=persona_id,
                           channel="text")
        try:
            for item in services.orchestrator.run(turn):
                if isinstance(item, TurnDelta):
                    chat[-1]["content"] += item.text
                    yield "", session_id, chat, gr.skip()
                elif isinstance(item, TurnDone):
                    session_id = item.session_id
        except SessionNotFound:
            chat[-1]["content"] = "That conversation was deleted; start a new one."
            session_id = None
        except Exception:
            log.exception("typed turn failed")
            chat[-1]["content"] = "Sorry, something went wrong on my side. Please try again."
        yield "", session_id, chat, sessions_update(user, session_id)

    def voice_outputs(voice_transcript: list[dict], turn: dict):
        # FastRTC calls this without the page's request, so it shows only what this
        # connection said and heard; reopening the conversation shows all of it.
        return voice_transcript, latency_table(turn), turn.get("session_id")

    def bind_voice(webrtc_data, persona_id: str, session_id: str | None, request: gr.Request) -> None:
        """FastRTC sends the page's inputs to its connection on every change: the first
        time, the connection is bound to this visitor (limits apply from here)."""
        webrtc_id = getattr(webrtc_data, "webrtc_id", webrtc_data)
        user = access.browser.of(request)
        if isinstance(webrtc_id, str) and webrtc_id and user is not None:
            try:
                access.identities.bind_user(webrtc_id, user)
            except (LimitReached, TokenRejected) as exc:
                gr.Warning(str(exc))  # its turns are answered with the same words (no identity)
        voice.set_input(webrtc_id, webrtc_data, persona_id, session_id)

    def upload(files: list[str] | None, request: gr.Request) -> str:
        user = who(request)
        notes = []
        for name in files or []:
            path = Path(name)
            try:
                if path.stat().st_size > access.upload_bytes:
                    raise KnowledgeError(f"{path.name} is over the {access.upload_bytes / 1_000_000:g} MB limit")
                added = services.knowledge.add_document(user, path.name, path.read_text(encoding="utf-8"),
                                                        source="upload")
                notes.append(f"✅ {path.name}: {added['chunks']} chunks")
            except UnicodeDecodeError:
                notes.append(f"⚠️ {path.name}: not UTF-8 text; upload .txt or .md files")
            except (OSError, KnowledgeError) as exc:
                notes.append(f"⚠️ {exc}")
        return "\n".join(notes) + "\n\n" + documents_view(services.knowledge.documents(user))

    def show_stored(request: gr.Request) -> str:
        return stored_view(services.personal_data.shown(who(request)))

    def forget_me(request: gr.Request):
        user = who(request)
        outcome = services.personal_data.erase(user)
        log.info("a visitor erased their data")  # never who: that is what they asked us to forget
        return (erased_view(outcome), None, [], gr.update(choices=[], value=None),
                profile_view({}, []), documents_view([]), audit_view([]))

    with gr.Blocks(title="CozyEngine") as blocks:
        gr.Markdown("# CozyEngine\nPress the microphone, speak, and pause: the persona answers. "
                    "Or type below.")
        with gr.Row():
            identity = gr.Markdown("")
            if access.login_button:
                gr.LoginButton(size="sm")
        session_id = gr.State(None)
        if access.voice_note:
            gr.Markdown(access.voice_note)
        with gr.Row():
            voice = WebRTC(label="Voice", modality="audio", mode="send-receive", full_screen=False,
                           rtc_configuration=stream.rtc_configuration,
                           button_labels={"start": "Talk", "stop": "Hang up", "waiting": "Connecting…"})
            if guard_voice is not None:
                guard_voice(voice)
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    persona = gr.Dropdown([(p.name, p.id) for p in personas.all()], value=default_persona,
                                          label="Persona")
                    session = gr.Dropdown([], value=None, label="Conversation", allow_custom_value=False)
                with gr.Row():
                    new_button = gr.Button("New conversation", size="sm")
                    delete_button = gr.Button("Delete conversation", size="sm", variant="stop")
                persona_card = gr.Markdown(describe(default_persona))
                typed = gr.Textbox(label="Type instead", placeholder="Say something…")
            with gr.Column(scale=3):
                transcript = gr.Chatbot(type="messages", label="Transcript", height=440)
                with gr.Tab("Latency"):
                    latency = gr.Markdown(latency_table({}))
                    gr.Markdown("Models: " + ", ".join(f"{k} `{v}`" for k, v in model_names.items()))
                with gr.Tab("Memory & profile"):
                    memory_view = gr.Markdown("")
                    refresh = gr.Button("Refresh", size="sm")
                with gr.Tab("Tools"):
                    tools_panel = gr.Markdown(persona_tools(default_persona))
                    gr.Markdown("**Your recent tool calls** (every attempt, allowed or denied)")
                    audit_panel = gr.Markdown("")
                with gr.Tab("Knowledge"):
                    files = gr.File(file_count="multiple", file_types=[".txt", ".md"], type="filepath",
                                    label="Add documents")
                    documents = gr.Markdown("")
                with gr.Tab("Your data"):
                    gr.Markdown("Everything this server stores about you: conversations, memories, profile, "
                                "documents, notes and tool calls. **Forget me** erases all of it.")
                    with gr.Row():
                        show_button = gr.Button("Show what is stored", size="sm")
                        forget_button = gr.Button("Forget me", size="sm", variant="stop")
                    privacy_status = gr.Markdown("")

        # The page's inputs reach its voice connection through this, so it also binds the visitor.
        voice.set_input_gradio = bind_voice
        voice.set_input_on_submit = bind_voice
        voice.stream(fn=stream.event_handler, inputs=[voice, persona, session_id], outputs=[voice],
                     concurrency_limit=stream.concurrency_limit, time_limit=stream.time_limit)
        voice.on_additional_outputs(voice_outputs, outputs=[transcript, latency, session_id],
                                    queue=False, show_progress="hidden")
        persona.change(describe, inputs=[persona], outputs=[persona_card])
        persona.change(persona_tools, inputs=[persona], outputs=[tools_panel])
        gr.Timer(3).tick(recent_tool_calls, outputs=[audit_panel], show_progress="hidden")
        typed.submit(type_turn, inputs=[typed, persona, session_id, transcript],
                     outputs=[typed, session_id, transcript, session], api_name="type")
        session.input(open_session, inputs=[session], outputs=[session_id, transcript])
        new_button.click(new_session, outputs=[session_id, transcript, session])
        delete_button.click(delete_session, inputs=[session_id], outputs=[session_id, transcript, session])
        refresh.click(memory_markdown, outputs=[memory_view])
        files.upload(upload, inputs=[files], outputs=[documents])
        show_button.click(show_stored, outputs=[privacy_status], api_name="stored")
        forget_button.click(forget_me, outputs=[privacy_status, session_id, transcript, session, memory_view,
                                                documents, audit_panel], api_name="forget")
        blocks.load(page_for_visitor, outputs=[identity, session, memory_view, documents, audit_panel])
    return blocks
