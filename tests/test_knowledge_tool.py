"""knowledge_search: the app's own MCP server, reached over streamable HTTP by the gateway."""
from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import uvicorn
from fastapi import FastAPI

from handlers.knowledge_mcp import KnowledgeEndpoint
from memory.knowledge import LocalKnowledge
from tests.conftest import free_port, new_store
from tools.config import ServerSpec, ToolSpec, load_config
from tools.gateway import ToolCallContext, ToolGateway
from tools.servers.knowledge import build_knowledge_server

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)


@pytest.fixture
def knowledge_gateway(tmp_path, monkeypatch):
    monkeypatch.setenv("COZY_TOOLS_PINS_PATH", str(tmp_path / "pins.json"))
    monkeypatch.setenv("COZY_TOOLS_LOG_DIR", str(tmp_path / "logs"))
    db = new_store(tmp_path)
    knowledge = LocalKnowledge(db)
    knowledge.add_document("ada", "ada-garden.md", "# Garden\n\nThe tomatoes go in the south bed in May.")
    knowledge.add_document("bob", "bob-secret.md", "# Vault\n\nThe vault code is 4471. The tomatoes are Bob's.")
    knowledge.add_document(None, "bakery.md", "# Bakery\n\nThe Cozy Bakery opens at 7:30.")
    endpoint = KnowledgeEndpoint(build_knowledge_server(knowledge.search))

    @asynccontextmanager
    async def lifespan(_):
        async with endpoint.running():
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount(endpoint.path, endpoint.asgi)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    spec = ServerSpec(name="knowledge", url=endpoint.url(port), share_identity=True, vetted=True, tools={
        "knowledge_search": ToolSpec("knowledge_search", "read_only", timeout_s=5, max_result_bytes=8000)})
    config = load_config()
    gateway = ToolGateway(replace(config, servers=(spec,)))
    gateway.start(wait_s=10)
    yield gateway, endpoint, port
    gateway.stop()
    server.should_exit = True
    thread.join(timeout=10)
    db.close()


def search(gateway: ToolGateway, user: str, query: str):
    context = ToolCallContext(user_id=user, session_id="s1", persona_id="tutor",
                              allowed_tools=("knowledge_search",), channel="voice")
    return gateway.call(context, "knowledge_search", f'{{"query": "{query}"}}')


def test_a_user_finds_their_own_and_shared_documents_only(knowledge_gateway):
    gateway, _, _ = knowledge_gateway
    ada = search(gateway, "ada", "tomatoes")
    assert ada.ok and "south bed" in ada.content and "4471" not in ada.content
    assert "7:30" in search(gateway, "ada", "bakery opens").content
    assert "4471" in search(gateway, "bob", "vault code").content
    assert "4471" not in search(gateway, "ada", "vault code").content


def test_the_endpoint_needs_its_secret_path(knowledge_gateway):
    import httpx

    _, endpoint, port = knowledge_gateway
    guessed = httpx.post(f"http://127.0.0.1:{port}/internal/mcp/guess/mcp", json={})
    assert guessed.status_code == 404
    assert len(endpoint.path.rsplit("/", 1)[1]) >= 32


def test_uploading_a_document_again_replaces_it_and_a_deleted_one_is_gone(tmp_path):
    db = new_store(tmp_path)
    knowledge = LocalKnowledge(db)
    knowledge.add_document("ada", "garden.md", "The tomatoes go in the south bed.")
    knowledge.add_document("bob", "garden.md", "Bob grows leeks by the shed.")
    knowledge.add_document("ada", "garden.md", "The tomatoes go in the north bed now.")  # edited, uploaded again
    ada_docs = knowledge.documents("ada")
    assert [d["title"] for d in ada_docs] == ["garden.md"]
    assert "north bed" in knowledge.search("ada", "tomatoes bed")[0].content
    assert not any("south" in hit.content for hit in knowledge.search("ada", "tomatoes south bed"))

    assert not knowledge.delete_document("bob", ada_docs[0]["id"])  # not Bob's to delete
    assert knowledge.delete_document("ada", ada_docs[0]["id"])
    assert knowledge.documents("ada") == [] and knowledge.search("ada", "tomatoes") == []
    assert db.read("SELECT count(*) FROM knowledge_chunks WHERE owner_id = 'ada'")[0][0] == 0  # erased
    assert [d["title"] for d in knowledge.documents("bob")] == ["garden.md"]
    db.close()
