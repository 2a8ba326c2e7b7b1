"""The Gradio Blocks page around the voice Stream (also the Hugging Face Space UI)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
from fastrtc import Stream, WebRTC

from memory.knowledge import KnowledgeError
from orchestrator.services import ChatServices
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest
from personas.cards import PersonaCatalog, PersonaError
from space.views import (audit_view, documents_view, latency_table, profile_view, session_choices, tools_view,
                         transcript_of)
from storage.conversations import SessionNotFound

log = logging.getLogger(__name__)

UI_USER = "local"  # the page is a single-user console; API users come with their own tokens
MAX_UPLOAD_BYTES = 2_000_000


def build_ui(stream: Stream, services: ChatServices, personas: PersonaCatalog,
             model_names: dict[str, str], gateway, audit,
             guard_voice: Callable[[WebRTC], None] | None = None) -> gr.Blocks:
    """`guard_voice` gets the page's WebRTC component, whose peers FastRTC books apart
    from the Stream's: the host puts them under the one voice-connection limit."""
    conversations = services.conversations
    default_persona = personas.get(None).id

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

    def recent_tool_calls() -> str:
        return audit_view(audit.recent(None, 25))

    def sessions_update(selected: str | None):
        return gr.update(choices=session_choices(conversations.sessions(UI_USER)), value=selected)

    def memory_markdown() -> str:
        return profile_view(services.profile.get(UI_USER), services.memory.list(UI_USER, 50))

    def open_session(session_id: str | None):
        if not session_id:
            return None, []
        try:
            return session_id, transcript_of(conversations.messages(UI_USER, session_id))
        except SessionNotFound:
            gr.Warning("That conversation no longer exists.")
            return None, []

    def new_session():
        return None, [], sessions_update(None)

    def delete_session(session_id: str | None):
        if session_id:
            try:
                conversations.delete_session(UI_USER, session_id)
            except SessionNotFound:
                pass
        return None, [], sessions_update(None)

    def type_turn(message: str, persona_id: str, session_id: str | None, chat: list[dict]) -> Iterator[tuple]:
        message = (message or "").strip()
        if not message:
            yield "", session_id, chat, gr.skip()
            return
        chat = chat + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        request = TurnRequest(text=message, user_id=UI_USER, session_id=session_id,
                              persona_id=persona_id, channel="text")
        try:
            for item in services.orchestrator.run(request):
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
        yield "", session_id, chat, sessions_update(session_id)

    def voice_outputs(voice_transcript: list[dict], turn: dict):
        session_id = turn.get("session_id")
        if session_id:
            chat = transcript_of(conversations.messages(UI_USER, session_id))
        else:
            chat = voice_transcript
        return chat, latency_table(turn), session_id

    def upload(files: list[str] | None) -> str:
        notes = []
        for name in files or []:
            path = Path(name)
            try:
                if path.stat().st_size > MAX_UPLOAD_BYTES:
                    raise KnowledgeError(f"{path.name} is over {MAX_UPLOAD_BYTES // 1_000_000} MB")
                added = services.knowledge.add_document(UI_USER, path.name, path.read_text(encoding="utf-8"),
                                                        source="upload")
                notes.append(f"✅ {path.name}: {added['chunks']} chunks")
            except UnicodeDecodeError:
                notes.append(f"⚠️ {path.name}: not UTF-8 text; upload .txt or .md files")
            except (OSError, KnowledgeError) as exc:
                notes.append(f"⚠️ {exc}")
        return "\n".join(notes) + "\n\n" + documents_view(services.knowledge.documents(UI_USER))

    with gr.Blocks(title="CozyEngine") as blocks:
        gr.Markdown("# CozyEngine\nPress the microphone, speak, and pause: the persona answers. "
                    "Or type below.")
        session_id = gr.State(None)
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
                    session = gr.Dropdown(session_choices(conversations.sessions(UI_USER)), value=None,
                                          label="Conversation", allow_custom_value=False)
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
                    memory_view = gr.Markdown(memory_markdown())
                    refresh = gr.Button("Refresh", size="sm")
                with gr.Tab("Tools"):
                    tools_panel = gr.Markdown(persona_tools(default_persona))
                    gr.Markdown("**Recent tool calls** (every attempt, allowed or denied)")
                    audit_panel = gr.Markdown(recent_tool_calls())
                with gr.Tab("Knowledge"):
                    files = gr.File(file_count="multiple", file_types=[".txt", ".md"], type="filepath",
                                    label="Add documents")
                    documents = gr.Markdown(documents_view(services.knowledge.documents(UI_USER)))

        voice.stream(fn=stream.event_handler, inputs=[voice, persona, session_id], outputs=[voice],
                     concurrency_limit=stream.concurrency_limit, time_limit=stream.time_limit)
        voice.on_additional_outputs(voice_outputs, outputs=[transcript, latency, session_id],
                                    queue=False, show_progress="hidden")
        persona.change(describe, inputs=[persona], outputs=[persona_card])
        persona.change(persona_tools, inputs=[persona], outputs=[tools_panel])
        gr.Timer(3).tick(recent_tool_calls, outputs=[audit_panel], show_progress="hidden")
        typed.submit(type_turn, inputs=[typed, persona, session_id, transcript],
                     outputs=[typed, session_id, transcript, session])
        session.input(open_session, inputs=[session], outputs=[session_id, transcript])
        new_button.click(new_session, outputs=[session_id, transcript, session])
        delete_button.click(delete_session, inputs=[session_id], outputs=[session_id, transcript, session])
        refresh.click(memory_markdown, outputs=[memory_view])
        files.upload(upload, inputs=[files], outputs=[documents])
        blocks.load(memory_markdown, outputs=[memory_view])
    return blocks
