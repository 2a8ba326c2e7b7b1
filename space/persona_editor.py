"""The page's persona editor, for admins: a card as YAML, saved through the same editor
as the API's (validated like a file, written atomically, used from the next turn), and
a button that says the card's greeting in its offline voice before anyone hears it live."""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import numpy as np
import yaml

from personas.cards import Persona, PersonaCatalog, PersonaError, parse_card
from personas.editor import PersonaEditor

NEW = "__new__"
NOT_ADMIN = "Only admins can change personas (COZY_ADMINS, or the owner of a server without API keys)."
TEMPLATE = {"id": "new-persona", "name": "A new persona", "language": "en",
            "system_prompt": "You are a friendly voice assistant. Answer in one or two short sentences.",
            "greeting": "Hello! What can I do for you?", "voices": {"kokoro": "af_heart"},
            "temperature": 0.6, "max_reply_tokens": 120, "allowed_tools": ["clock"]}

Speak = Callable[[Persona], tuple[int, np.ndarray]]


def _yaml(card: dict) -> str:
    return yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=100)


def _parsed(text: str) -> dict:
    try:
        card = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise PersonaError(f"card: not valid YAML: {exc}") from exc
    if not isinstance(card, dict):
        raise PersonaError("card: a persona card must be a mapping of fields")
    return card


def persona_editor_tab(personas: PersonaCatalog, is_admin: Callable[[gr.Request], bool], speak: Speak,
                       persona_picker: gr.Dropdown) -> gr.Tab:
    """Built inside the page's Blocks; hidden unless the visitor is an admin (checked again on
    every action: a hidden tab's events can still be called)."""
    editor = PersonaEditor(personas)

    def choices() -> list[tuple[str, str]]:
        return [("➕ New persona", NEW), *[(p.name, p.id) for p in personas.all()]]

    def load(persona_id: str | None, request: gr.Request) -> tuple[str, str]:
        if not is_admin(request):
            return "", NOT_ADMIN
        if not persona_id or persona_id == NEW:
            return _yaml(TEMPLATE), "A new card: change its id, then **Save**."
        try:
            return _yaml(editor.card(persona_id)), ""
        except PersonaError as exc:
            return "", f"⚠️ {exc}"

    def save(persona_id: str | None, text: str, request: gr.Request):
        if not is_admin(request):
            return gr.skip(), NOT_ADMIN, gr.skip()
        try:
            card = _parsed(text)
            if persona_id and persona_id != NEW:
                saved = editor.replace(persona_id, card)
            else:
                saved = editor.create(card)
        except PersonaError as exc:  # names the field, as the API's 400 does
            return gr.skip(), f"⚠️ {exc}", gr.skip()
        listed = [(p.name, p.id) for p in personas.all()]
        return (gr.update(choices=choices(), value=saved.id), f"✅ Saved **{saved.name}**: used from the next turn.",
                gr.update(choices=listed))

    def delete(persona_id: str | None, request: gr.Request):
        if not is_admin(request):
            return gr.skip(), NOT_ADMIN, gr.skip(), gr.skip()
        if not persona_id or persona_id == NEW:
            return gr.skip(), "Choose a persona to delete.", gr.skip(), gr.skip()
        try:
            gone = editor.delete(persona_id)
        except PersonaError as exc:
            return gr.skip(), f"⚠️ {exc}", gr.skip(), gr.skip()
        listed = [(p.name, p.id) for p in personas.all()]
        return (gr.update(choices=choices(), value=NEW), f"🗑️ Deleted **{gone.name}** (its conversations stay readable).",
                _yaml(TEMPLATE), gr.update(choices=listed))

    def try_voice(text: str, request: gr.Request):
        """The unsaved card's greeting in its voice: hear it before saving."""
        if not is_admin(request):
            return None, NOT_ADMIN
        try:
            card = _parsed(text)
            persona = parse_card(personas.folder / f"{card.get('id') or 'card'}.yaml", card)
            return speak(persona), f"🔊 {persona.name}: “{persona.greeting}”"
        except PersonaError as exc:
            return None, f"⚠️ {exc}"
        except Exception as exc:  # the voice failed: say so, keep the editor usable
            return None, f"⚠️ The voice could not speak: {exc}"

    with gr.Tab("Personas", visible=False) as tab:
        gr.Markdown("Edit a persona's card (fields as in `personas/*.yaml`). **Try this voice** says its "
                    "greeting in the voice it would speak with; **Save** makes it live for every channel.")
        picker = gr.Dropdown(choices(), value=NEW, label="Persona to edit")
        card_text = gr.Code(_yaml(TEMPLATE), language="yaml", label="Card", lines=18)
        with gr.Row():
            save_button = gr.Button("Save", variant="primary", size="sm")
            try_button = gr.Button("Try this voice", size="sm")
            delete_button = gr.Button("Delete", variant="stop", size="sm")
        status = gr.Markdown("", elem_id="persona-editor-status")
        sample = gr.Audio(label="Voice sample", type="numpy", interactive=False, autoplay=True)

    picker.input(load, inputs=[picker], outputs=[card_text, status])
    save_button.click(save, inputs=[picker, card_text], outputs=[picker, status, persona_picker],
                      api_name="persona_save")
    delete_button.click(delete, inputs=[picker], outputs=[picker, status, card_text, persona_picker],
                        api_name="persona_delete")
    try_button.click(try_voice, inputs=[card_text], outputs=[sample, status], api_name="persona_try_voice")
    return tab
