"""Knowledge documents on DuckDB: text/markdown split into chunks, searched by terms.

Documents belong to a user, or to everyone when added by an operator (no owner).

    python -m memory.knowledge add FILE [FILE ...] [--user USER]   # operator command
    python -m memory.knowledge list [--user USER]
"""
from __future__ import annotations

import argparse
import re
import sys
import uuid
from pathlib import Path

from memory.base import KnowledgeHit
from storage.backends import Store, open_database
from storage.term_index import terms_of

MAX_DOCUMENT_CHARS = 2_000_000
CHUNK_CHARS = 700
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")


class KnowledgeError(ValueError):
    pass


def chunk_text(text: str, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """Paragraph-aligned chunks, each prefixed with the heading it sits under, so a
    chunk found alone still says what it is about."""
    chunks: list[str] = []
    heading, current = "", ""

    def flush() -> None:
        nonlocal current
        if current.strip():
            chunks.append((f"{heading}\n" if heading else "") + current.strip())
        current = ""

    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = paragraph.strip().splitlines()
        if lines and (match := _HEADING.match(lines[0])):
            flush()
            heading = match.group(1).strip()
            paragraph = "\n".join(lines[1:])
        pieces = [paragraph]
        if len(paragraph) > chunk_chars:  # one huge paragraph: split at sentences
            pieces = re.split(r"(?<=[.!?])\s+|(?<=[。！？])", paragraph)
        for piece in pieces:
            while len(piece) > chunk_chars:  # a sentence longer than a chunk
                cut = piece.rfind(" ", 0, chunk_chars)
                cut = cut if cut > 0 else chunk_chars
                flush()
                current = piece[:cut]
                flush()
                piece = piece[cut:].strip()
            if len(current) + len(piece) + 2 > chunk_chars:
                flush()
            current = f"{current}\n\n{piece}" if current else piece
    flush()
    return chunks


def _delete_document(cursor, document_id: str) -> None:
    cursor.execute("DELETE FROM knowledge_terms WHERE chunk_id IN "
                   "(SELECT id FROM knowledge_chunks WHERE document_id = ?)", [document_id])
    cursor.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", [document_id])
    cursor.execute("DELETE FROM knowledge_documents WHERE id = ?", [document_id])


class LocalKnowledge:
    def __init__(self, db: Store):
        self.db = db

    def add_document(self, owner_id: str | None, title: str, text: str, source: str | None = None) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise KnowledgeError(f"'{title}' has no text to add")
        if len(text) > MAX_DOCUMENT_CHARS:
            raise KnowledgeError(f"'{title}' is {len(text):,} characters; the limit is {MAX_DOCUMENT_CHARS:,}")
        chunks = chunk_text(text)
        document_id = uuid.uuid4().hex

        def work(cursor) -> None:
            # The same title again replaces the document (an edited file, uploaded again).
            for (old_id,) in cursor.execute(
                    "SELECT id FROM knowledge_documents WHERE owner_id IS NOT DISTINCT FROM ? AND title = ?",
                    [owner_id, title]).fetchall():
                _delete_document(cursor, old_id)
            cursor.execute("INSERT INTO knowledge_documents (id, owner_id, title, source, chars) "
                           "VALUES (?, ?, ?, ?, ?)", [document_id, owner_id, title, source, len(text)])
            chunk_rows, term_rows = [], []
            for seq, content in enumerate(chunks):
                chunk_id = uuid.uuid4().hex
                chunk_rows.append([chunk_id, document_id, owner_id, seq, content])
                term_rows += [[chunk_id, owner_id, term] for term in terms_of(content)]
            cursor.executemany("INSERT INTO knowledge_chunks (id, document_id, owner_id, seq, content) "
                               "VALUES (?, ?, ?, ?, ?)", chunk_rows)
            if term_rows:
                cursor.executemany("INSERT INTO knowledge_terms (chunk_id, owner_id, term) VALUES (?, ?, ?)",
                                   term_rows)

        self.db.write(work, timeout=120)
        return {"id": document_id, "title": title, "chunks": len(chunks), "chars": len(text)}

    def search(self, user_id: str, query: str, limit: int = 3) -> list[KnowledgeHit]:
        terms = terms_of(query, limit=30)
        if not terms:
            return []
        rows = self.db.read(
            """
            WITH hits AS (
                SELECT chunk_id, term FROM knowledge_terms
                WHERE (owner_id = $user OR owner_id IS NULL) AND term = ANY($terms)
            ),
            df AS (SELECT term, count(*) AS df FROM hits GROUP BY term),
            total AS (SELECT greatest(count(*), 1) AS n FROM knowledge_chunks
                      WHERE owner_id = $user OR owner_id IS NULL)
            SELECT d.title, c.content, sum(ln(1 + 1.0 * total.n / df.df)) AS score
            FROM hits h JOIN df USING (term) JOIN knowledge_chunks c ON c.id = h.chunk_id
                 JOIN knowledge_documents d ON d.id = c.document_id, total
            GROUP BY c.id, d.title, c.content
            ORDER BY score DESC
            LIMIT $limit
            """, {"user": user_id, "terms": terms, "limit": limit})
        return [KnowledgeHit(title, content, float(score)) for title, content, score in rows]

    def delete_document(self, owner_id: str, document_id: str) -> bool:
        """Erase one of this owner's documents, its chunks and terms (shared ones are not theirs)."""
        def work(cursor) -> bool:
            owned = cursor.execute("SELECT 1 FROM knowledge_documents WHERE id = ? AND owner_id = ?",
                                   [document_id, owner_id]).fetchone()
            if owned:
                _delete_document(cursor, document_id)
            return bool(owned)

        return self.db.write(work)

    def documents(self, user_id: str | None) -> list[dict]:
        return self.db.read_dicts(
            "SELECT id, title, source, chars, created_at, owner_id IS NULL AS shared FROM knowledge_documents "
            "WHERE owner_id = ? OR owner_id IS NULL ORDER BY created_at DESC", [user_id])


def main(argv: list[str]) -> int:
    from config import Settings

    parser = argparse.ArgumentParser(prog="python -m memory.knowledge")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add text or markdown files")
    add.add_argument("files", nargs="+", type=Path)
    add.add_argument("--user", help="owner; omit to share with every user")
    listing = sub.add_parser("list")
    listing.add_argument("--user")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    db = open_database(settings.database_path, settings.db_url)
    knowledge = LocalKnowledge(db)
    try:
        if args.command == "add":
            for path in args.files:
                try:
                    text = path.read_text(encoding="utf-8")
                    added = knowledge.add_document(args.user, path.name, text, source=str(path))
                except (OSError, UnicodeDecodeError, KnowledgeError) as exc:
                    print(f"skipped {path}: {exc}", file=sys.stderr)
                    continue
                print(f"added {path.name}: {added['chunks']} chunks")
        else:
            for doc in knowledge.documents(args.user):
                print(f"{doc['id']}  {doc['title']}  {doc['chars']} chars  {'shared' if doc['shared'] else ''}")
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
