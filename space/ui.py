"""The Gradio Blocks page around the voice Stream (also the Hugging Face Space UI).

Every event reads its visitor from its own request (or the page's server-side
state, set from it at load): nothing on the page is shared between visitors.
The transcript is live for typed and spoken turns alike (space/typed_turn.py,
space/transcript.py); the voice state comes from the call itself, not the waveform.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
from fastrtc import Stream, WebRTC

from handlers.visitor_limits import LimitReached, VisitorLimiter
from handlers.visitors import BrowserIdentity
from handlers.voice.identity import TokenRejected, VoiceIdentities
from memory.knowledge import KnowledgeError
from orchestrator.services import ChatServices
from orchestrator.turns import TurnRequest
from personas.cards import PersonaCatalog, PersonaError
from space.call_updates import on_call_updates
from space.one_click_voice import VOICE_ELEM_ID, one_click_head
from space.persona_editor import Speak, persona_editor_tab
from space.transcript import IDLE_STATE, STATE_LABELS, THINKING, live_voice_chat, transcript_of
from space.typed_turn import run_typed_turn, start_chat
from space.views import (audit_view, documents_view, erased_view, identity_view, latency_rows, latency_table,
                         profile_view, session_choices, stored_view, tools_view)
from storage.conversations import SessionNotFound

log = logging.getLogger(__name__)

NO_IDENTITY = "Your visitor identity is missing or expired: reload the page."
NO_TURN_NOTE = ("⚠️ This server has no TURN relay, so voice may not connect from your network. Typing always "
                "works, and voice clients can use the websocket route `/voice/websocket/offer`.")
PAGE_CSS = """
#transcript { height: min(56vh, 520px) !important; }
#voice-state { min-height: 1.6em; }
@media (max-width: 720px) {
  #transcript { height: 52vh !important; }
  #input-bar { position: sticky; bottom: 0; z-index: 20; background: var(--background-fill-primary);
               padding: 6px 0; }
  #page-header p { display: none; }
}
"""
# System fonts: a theme with Google fonts would make every visitor's browser call Google.
THEME = gr.themes.Soft(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                       font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])
TALK = "Talk"  # the one button that starts a call (space/one_click_voice.py)
EMPTY_HISTORY = pd.DataFrame({"turn": pd.Series(dtype=str), "stage": pd.Series(dtype=str),
                              "seconds": pd.Series(dtype=float)})


@dataclass(frozen=True)
class PageAccess:
    """Who the page serves and what one visitor may use (see handlers/visitors.py)."""

    browser: BrowserIdentity
    identities: VoiceIdentities
    limiter: VisitorLimiter | None = None  # None: a local console, no per-visitor limits
    upload_bytes: int = 2_000_000
    login_button: bool = False  # Hugging Face OAuth is available (a Space with hf_oauth)
    voice_note: str = ""  # shown above the microphone, e.g. that voice may not connect
    queue_position: Callable[[str], int | None] = lambda user: None  # the local LLM's queue
    is_admin: Callable[[str], bool] = lambda user: False  # may edit personas (space/persona_editor.py)
    speak: Speak | None = None  # a persona's greeting in its voice, for the editor's "Try this voice"


def build_ui(stream: Stream, services: ChatServices, personas: PersonaCatalog,
             model_names: dict[str, str], gateway, audit, access: PageAccess,
             guard_voice: Callable[[WebRTC], None] | None = None) -> gr.Blocks:
    """`guard_voice` gets the page's WebRTC component, whose peers FastRTC books apart
    from the Stream's: the host puts them under the one voice-connection limit."""
    conversations = services.conversations
    default_persona = personas.get(None).id
    model_label = model_names.get("llm", "").split(" → ")[0]

    def page_admin(request: gr.Request | None) -> bool:
        user = access.browser.of(request)
        return user is not None and access.is_admin(user)

    def who(request: gr.Request | None) -> str:
        user = access.browser.of(request)
        if user is None:
            raise gr.Error(NO_IDENTITY)
        return user

    def persona_name(persona_id: str | None) -> str:
        try:
            return personas.get(persona_id).name
        except PersonaError:  # deleted since: its old conversations keep its name
            gone = personas.deleted(persona_id) if persona_id else None
            return gone.name if gone is not None else persona_id or "Assistant"

    def persona_names() -> dict[str, str]:
        return {p.id: p.name for p in personas.all()}

    def stored_chat(user: str, session_id: str) -> list[dict]:
        return transcript_of(conversations.messages(user, session_id), persona_name)

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
        return audit_view(audit.recent(who(request), 25), persona_names())

    def sessions_update(user: str, selected: str | None):
        return gr.update(choices=session_choices(conversations.sessions(user)), value=selected)

    def documents_update(user: str):
        return gr.update(choices=[(d["title"], d["id"]) for d in services.knowledge.documents(user)
                                  if not d["shared"]], value=None)

    def memory_markdown(request: gr.Request) -> str:
        user = who(request)
        return profile_view(services.profile.get(user), services.memory.list(user, 50))

    def page_for_visitor(request: gr.Request):
        """Everything on the page that belongs to someone, filled in for this visitor."""
        user = access.browser.of(request)
        if user is None:
            return (NO_IDENTITY, None, gr.update(choices=[], value=None), "", "", gr.update(choices=[]), "")
        return (identity_view(user, access.browser.public), user, sessions_update(user, None),
                profile_view(services.profile.get(user), services.memory.list(user, 50)),
                documents_view(services.knowledge.documents(user)), documents_update(user),
                audit_view(audit.recent(user, 25), persona_names()))

    def open_session(session_id: str | None, request: gr.Request):
        if not session_id:
            return None, []
        try:
            return session_id, stored_chat(who(request), session_id)
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

    # typed turns: shown at once (no queue), then answered live ------------------------------
    def show_pending(message: str, chat: list[dict], persona_id: str, busy: bool):
        message = (message or "").strip()
        if busy:
            gr.Info("Still answering: press Stop to interrupt, or wait for the reply.")
            return gr.skip(), gr.skip(), "", gr.skip(), gr.skip(), gr.skip()
        if not message:
            return gr.skip(), gr.skip(), "", gr.skip(), gr.skip(), gr.skip()
        chat = start_chat(chat, message, persona_name(persona_id))
        return "", chat, message, True, gr.update(visible=True), gr.update(visible=False)

    def run_typed(message: str, persona_id: str, session_id: str | None, chat: list[dict],
                  request: gr.Request) -> Iterator[tuple]:
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), False, gr.skip(), gr.skip(), gr.skip()
            return
        user = who(request)
        try:
            if access.limiter is not None:
                access.limiter.message(user)
        except LimitReached as limit:
            chat[-1]["content"] = f"⏳ {limit}"
            yield (gr.skip(), chat, gr.skip(), False, gr.update(visible=False), gr.update(visible=True),
                   message)
            return
        if not chat or chat[-1]["role"] != "assistant" or THINKING not in chat[-1]["content"]:
            chat = start_chat(chat, message, persona_name(persona_id))  # called as an API, not from the page
        request_ = TurnRequest(text=message, user_id=user, session_id=session_id, persona_id=persona_id,
                               channel="text")
        for update in run_typed_turn(services.orchestrator, request_, chat, persona_name(persona_id),
                                     model_label, access.queue_position):
            if not update.done:
                yield update.session_id, update.chat, gr.skip(), True, gr.skip(), gr.skip(), gr.skip()
                continue
            yield (update.session_id, update.chat, sessions_update(user, update.session_id), False,
                   gr.update(visible=False), gr.update(visible=update.failed), message)

    def stop_typed():
        return False, gr.update(visible=False)

    def prepare_retry(last_message: str, chat: list[dict], persona_id: str):
        # The failed exchange goes; the same words are asked again.
        while chat and chat[-1]["role"] == "assistant":
            chat = chat[:-1]
        chat = chat[:-1] if chat and chat[-1]["role"] == "user" else chat
        return (start_chat(chat, last_message, persona_name(persona_id)), last_message, True,
                gr.update(visible=True), gr.update(visible=False))

    # voice ---------------------------------------------------------------------------------------
    def voice_outputs(user: str | None, history: list[dict], voice_transcript: list[dict], turn: dict):
        """FastRTC calls this without the request: the visitor comes from the page's state."""
        session_id = turn.get("session_id")
        stored: list[dict] = []
        if session_id and user:
            try:
                stored = stored_chat(user, session_id)
            except SessionNotFound:
                stored = []
        name = persona_name(turn.get("persona_id"))
        chat = live_voice_chat(stored, voice_transcript, turn, name)
        number = turn.get("turn")
        if "turn_s" in turn.get("stages_s", {}) and number and not any(r["turn"] == f"#{number}" for r in history):
            history = [*history, *latency_rows(number, turn)]
        state = STATE_LABELS.get(turn.get("state", ""), IDLE_STATE)
        sessions = sessions_update(user, session_id) if user and "turn_s" in turn.get("stages_s", {}) \
            else gr.skip()
        return (chat, latency_table(turn), pd.DataFrame(history) if history else EMPTY_HISTORY, session_id,
                state, sessions, history)

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

    # knowledge and your data -------------------------------------------------------------------
    def upload(files: list[str] | None, request: gr.Request):
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
        listing = "\n".join(notes) + "\n\n" + documents_view(services.knowledge.documents(user))
        return listing, documents_update(user)

    def delete_document(document_id: str | None, request: gr.Request):
        user = who(request)
        if document_id and not services.knowledge.delete_document(user, document_id):
            gr.Warning("That document is not yours to delete, or is gone already.")
        return documents_view(services.knowledge.documents(user)), documents_update(user)

    def show_stored(request: gr.Request) -> str:
        return stored_view(services.personal_data.shown(who(request)))

    def forget_me(request: gr.Request):
        user = who(request)
        outcome = services.personal_data.erase(user)
        log.info("a visitor erased their data")  # never who: that is what they asked us to forget
        return (erased_view(outcome), None, [], gr.update(choices=[], value=None),
                profile_view({}, []), documents_view([]), gr.update(choices=[], value=None), audit_view([]))

    with gr.Blocks(title="CozyEngine", theme=THEME, css=PAGE_CSS, head=one_click_head(TALK)) as blocks:
        with gr.Row(equal_height=True):
            gr.Markdown("## CozyEngine\nPress **Talk**, speak, and pause: the persona answers. Or type.",
                        elem_id="page-header")
            identity = gr.Markdown("")
            if access.login_button:
                gr.LoginButton(size="sm")
        session_id = gr.State(None)
        visitor = gr.State(None)  # server-side: set from the request at load
        busy = gr.State(False)
        pending = gr.Textbox(visible=False)  # the message being answered; a component, so the API can send it
        last_message = gr.State("")
        latency_history = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    session = gr.Dropdown([], value=None, label="Conversation", allow_custom_value=False,
                                          scale=3)
                    new_button = gr.Button("New", size="sm", scale=0, min_width=70)
                    delete_button = gr.Button("Delete", size="sm", variant="stop", scale=0, min_width=70)
                transcript = gr.Chatbot(type="messages", label="Transcript", elem_id="transcript",
                                        show_copy_button=True)
                with gr.Row(elem_id="input-bar"):
                    typed = gr.Textbox(label="Type instead", placeholder="Say something…", scale=5,
                                       show_label=False, container=False)
                    send = gr.Button("Send", variant="primary", scale=0, min_width=80)
                    stop = gr.Button("Stop", variant="stop", scale=0, min_width=80, visible=False)
                    retry = gr.Button("Retry", scale=0, min_width=80, visible=False)
            with gr.Column(scale=2):
                persona = gr.Dropdown([(p.name, p.id) for p in personas.all()], value=default_persona,
                                      label="Persona")
                persona_card = gr.Markdown(describe(default_persona))
                if access.voice_note:
                    gr.Markdown(access.voice_note)
                voice_state = gr.Markdown(IDLE_STATE, elem_id="voice-state")
                voice = WebRTC(label="Voice", modality="audio", mode="send-receive", full_screen=False,
                               rtc_configuration=stream.rtc_configuration, show_label=False,
                               elem_id=VOICE_ELEM_ID,
                               button_labels={"start": TALK, "stop": "Hang up", "waiting": "Connecting…"})
                if guard_voice is not None:
                    guard_voice(voice)
                with gr.Tab("Latency"):
                    latency = gr.Markdown(latency_table({}))
                    history_plot = gr.BarPlot(EMPTY_HISTORY, x="turn", y="seconds", color="stage",
                                              label="Voice turns: seconds per stage", height=220)
                    gr.Markdown("Models: " + ", ".join(f"{k} `{v}`" for k, v in model_names.items()))
                with gr.Tab("Tools"):
                    tools_panel = gr.Markdown(persona_tools(default_persona))
                    gr.Markdown("**Your recent tool calls** (every attempt, allowed or denied)")
                    audit_panel = gr.Markdown("")
                with gr.Tab("Memory"):
                    memory_view = gr.Markdown("")
                    refresh = gr.Button("Refresh", size="sm")
                with gr.Tab("Knowledge"):
                    files = gr.File(file_count="multiple", file_types=[".txt", ".md"], type="filepath",
                                    label="Add documents (the same name again replaces one)")
                    documents = gr.Markdown("")
                    with gr.Row():
                        document_picker = gr.Dropdown([], label="Your documents", scale=3)
                        delete_document_button = gr.Button("Delete document", size="sm", variant="stop",
                                                           scale=1)
                editor_tab = persona_editor_tab(personas, page_admin, access.speak, persona) \
                    if access.speak is not None else None
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
        on_call_updates(voice, voice_outputs, inputs=[visitor, latency_history],
                        outputs=[transcript, latency, history_plot, session_id, voice_state, session,
                                 latency_history])
        persona.change(describe, inputs=[persona], outputs=[persona_card])
        persona.change(persona_tools, inputs=[persona], outputs=[tools_panel])
        gr.Timer(3).tick(recent_tool_calls, outputs=[audit_panel], show_progress="hidden")

        typed_outputs = [session_id, transcript, session, busy, stop, retry, last_message]
        for trigger in (typed.submit, send.click):
            shown = trigger(show_pending, inputs=[typed, transcript, persona, busy],
                            outputs=[typed, transcript, pending, busy, stop, retry], queue=False,
                            show_progress="hidden")
            answered = shown.then(run_typed, inputs=[pending, persona, session_id, transcript],
                                  outputs=typed_outputs, show_progress="hidden", concurrency_limit=None,
                                  api_name="type" if trigger == typed.submit else None)
            stop.click(stop_typed, outputs=[busy, stop], cancels=[answered], queue=False)
        retried = retry.click(prepare_retry, inputs=[last_message, transcript, persona],
                              outputs=[transcript, pending, busy, stop, retry], queue=False)
        retried.then(run_typed, inputs=[pending, persona, session_id, transcript], outputs=typed_outputs,
                     show_progress="hidden", concurrency_limit=None)

        session.input(open_session, inputs=[session], outputs=[session_id, transcript])
        new_button.click(new_session, outputs=[session_id, transcript, session])
        delete_button.click(delete_session, inputs=[session_id], outputs=[session_id, transcript, session])
        refresh.click(memory_markdown, outputs=[memory_view])
        files.upload(upload, inputs=[files], outputs=[documents, document_picker])
        delete_document_button.click(delete_document, inputs=[document_picker],
                                     outputs=[documents, document_picker])
        show_button.click(show_stored, outputs=[privacy_status], api_name="stored")
        forget_button.click(forget_me, outputs=[privacy_status, session_id, transcript, session, memory_view,
                                                documents, document_picker, audit_panel], api_name="forget")
        blocks.load(page_for_visitor, outputs=[identity, visitor, session, memory_view, documents,
                                               document_picker, audit_panel])
        if editor_tab is not None:
            def show_editor(request: gr.Request):  # annotated: Gradio passes the request only so
                return gr.update(visible=page_admin(request))

            blocks.load(show_editor, outputs=[editor_tab], show_progress="hidden")
        # Personas an admin added or deleted (PUT /v1/personalities...) since the server started.
        blocks.load(lambda chosen: gr.Dropdown(choices=[(p.name, p.id) for p in personas.all()], value=chosen),
                    inputs=[persona], outputs=[persona], show_progress="hidden")
    return blocks
