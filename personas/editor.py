"""Admin changes to persona cards, through the API: a card sent as JSON is validated
exactly like a file on disk, written atomically (a reader never sees half a card), and
picked up by every channel at its next turn (the catalog re-reads changed files).
Deleting moves the card to `deleted/`: out of every list, still readable by id, so old
conversations keep their persona's name."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from personas.cards import Persona, PersonaCatalog, PersonaError, parse_card
from providers.moderation.base import OFF


class PersonaConflict(PersonaError):
    """The id is taken (or was, by a deleted persona), or the change is not allowed."""


class PersonaMissing(PersonaError):
    pass


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not named *.yaml while it is written, so the catalog never reads it half done.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class PersonaEditor:
    def __init__(self, catalog: PersonaCatalog):
        self.catalog = catalog
        # One change at a time, whichever editor (the API's, the page's) makes it: create's
        # "is the id free?" stays true until its card is written.
        self._lock = catalog.write_lock

    def _validated(self, data: Any) -> Persona:
        if not isinstance(data, dict):
            raise PersonaError("card: a persona card must be a JSON object of fields")
        persona = parse_card(Path(f"{data.get('id') or 'card'}.yaml"), data)
        if self.catalog.public and persona.moderation == OFF:
            raise PersonaError(f"{persona.id}.yaml: field 'moderation' is 'off', which a public server refuses")
        return persona

    def _card(self, persona_id: str) -> tuple[Path, dict[str, Any]]:
        path = self.catalog.path_of(persona_id)
        if path is None:
            raise PersonaMissing(f"No persona '{persona_id}'.")
        return path, yaml.safe_load(path.read_text(encoding="utf-8"))

    def card(self, persona_id: str) -> dict[str, Any]:
        """The card as written on disk (what an editor shows)."""
        return self._card(persona_id)[1]

    def create(self, data: Any) -> Persona:
        with self._lock:
            persona = self._validated(data)
            if self.catalog.path_of(persona.id) is not None or self.catalog.deleted(persona.id) is not None:
                raise PersonaConflict(f"A persona with id '{persona.id}' exists (or existed); choose another id.")
            _write_atomically(self.catalog.folder / f"{persona.id}.yaml", data)
            self.catalog.refresh()
            return persona

    def replace(self, persona_id: str, data: Any) -> Persona:
        """PUT: the whole card anew (its id stays)."""
        with self._lock:
            path, _ = self._card(persona_id)
            if not isinstance(data, dict):
                raise PersonaError("card: a persona card must be a JSON object of fields")
            if data.get("id", persona_id) != persona_id:
                raise PersonaError(f"{persona_id}.yaml: field 'id' cannot change; create a new persona instead")
            card = {**data, "id": persona_id}
            self._validated(card)
            _write_atomically(path, card)
            self.catalog.refresh()
            return self.catalog.get(persona_id)

    def update(self, persona_id: str, changes: Any) -> Persona:
        """PATCH: the fields sent replace those on the card; `null` removes one (its default applies)."""
        with self._lock:
            path, card = self._card(persona_id)
            if not isinstance(changes, dict):
                raise PersonaError("card: the changes must be a JSON object of fields")
            if "id" in changes and changes["id"] != persona_id:
                raise PersonaError(f"{persona_id}.yaml: field 'id' cannot change; create a new persona instead")
            merged = {**card, **changes}
            merged = {key: value for key, value in merged.items() if value is not None}
            self._validated(merged)
            _write_atomically(path, merged)
            self.catalog.refresh()
            return self.catalog.get(persona_id)

    def delete(self, persona_id: str) -> Persona:
        with self._lock:
            path, _ = self._card(persona_id)
            if persona_id == self.catalog.default_id:
                raise PersonaConflict(f"'{persona_id}' is the default persona (COZY_DEFAULT_PERSONA); "
                                      "make another the default before deleting it.")
            persona = self.catalog.get(persona_id)
            self.catalog.deleted_folder.mkdir(exist_ok=True)
            os.replace(path, self.catalog.deleted_folder / f"{persona_id}.yaml")
            self.catalog.refresh()
            return persona
