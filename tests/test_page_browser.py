"""A visitor's story on the public page, in a real browser (Playwright driving Debian's chromium).

The page is opened the way a person opens it: the first load gives them a visitor cookie,
a typed question gets an answer in the transcript, the page logs no errors, and "Forget me"
erases them, so that coming back shows nothing of before. Playwright cannot download its
own browsers here, so it drives the `chromium` that `make test` installs with apt.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Request, Route, expect, sync_playwright

from config import Settings
from providers import model_files
from tests.conftest import isolated_env, start_app, stop_app
from tests.fakes.vendor_server import FakeVendorServer
from tests.fakes.wire import ToolScript

# Generous: the app, the model and the browser share a busy 2-core machine.
UI_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 180_000
APOLOGY = "Sorry, something went wrong on my side"
def debian_chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("this test drives Debian's chromium, which is not installed: run `apt-get install chromium` "
                    "(`make test` installs it when run as root, as CI does)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-app")
    fast_model = model_files.resolve("smollm2-135m", Settings.from_env().models_dir)
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_PUBLIC": "1",
                             "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast_model)})
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def llm_vendor():
    """For the tool chip: a cloud model faked at the wire, which calls the clock every time
    (whether the offline model picks the right tool is tests/test_tool_reliability.py's job)."""
    with FakeVendorServer() as server:
        server.script.tool_calls = [ToolScript("call_clock", "current_time", ("{}",))]
        server.script.chat_text = ["It", " is", " time", " for", " tea."]
        yield server


@pytest.fixture(scope="module")
def tool_app(tmp_path_factory, llm_vendor):
    folder = tmp_path_factory.mktemp("browser-tool-app")
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_PUBLIC": "1",
                             "OPENAI_API_KEY": llm_vendor.api_key, "OPENAI_BASE_URL": f"{llm_vendor.url}/v1",
                             "COZY_LLM_ORDER": "openai", "COZY_STT_ORDER": "offline",
                             "COZY_TTS_ORDER": "offline"})
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as instance:
        yield instance


def launch(playwright, *extra_args: str) -> Browser:
    # The page asks for the microphone (FastRTC); a fake one answers without a prompt.
    return playwright.chromium.launch(executable_path=debian_chromium(), headless=True, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", *extra_args])


@pytest.fixture(scope="module")
def browser(playwright):
    browser = launch(playwright)
    yield browser
    browser.close()


class PageErrors:
    """Every console error and uncaught exception of the page, kept for the end of the test."""

    # What Gradio's client logs when the page it runs in is being left: it aborts its open
    # streams on unload. Nobody sees those (the page is going away), so they are not errors of
    # the page while a test navigates; at any other moment they are.
    UNLOAD_NOISE = re.compile(r"^(AbortError: signal is aborted|Unexpected error Connection errored out)")

    def __init__(self, page: Page):
        self.lines: list[str] = []
        self.leaving = False
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.lines.append(f"uncaught: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error" or (self.leaving and self.UNLOAD_NOISE.match(message.text)):
            return
        self.lines.append(f"console.error: {message.text} (at {message.location.get('url')})")


def keep_on_loopback(app_url: str, outside: list[str]):
    """The page must load nothing from other servers (offline it would fail; online it tells
    third parties who visits). Any such request is recorded, and refused so none leaves."""

    def answer(route: Route, request: Request) -> None:
        if request.url.startswith(app_url):
            route.continue_()
            return
        outside.append(request.url)
        route.abort()

    return answer


def open_page(page: Page, url: str, errors: PageErrors) -> None:
    errors.leaving = True
    try:
        page.goto(url, wait_until="load")
    finally:
        errors.leaving = False
    # The page is ready once its load event has said whose page it is.
    expect(page.get_by_text("You are visitor")).to_be_visible(timeout=UI_TIMEOUT_MS)


def transcript_messages(page: Page):
    chat = page.get_by_role("log", name="chatbot conversation")
    return chat.get_by_test_id("user"), chat.get_by_test_id("bot")


def conversation_entries(page: Page):
    """The Conversation dropdown's entries, as a visitor sees them when they open it."""
    page.get_by_role("listbox", name="Conversation").click()
    return page.get_by_role("option")


def close_dropdown(page: Page) -> None:
    page.keyboard.press("Escape")
    page.get_by_placeholder("Say something…").click()


def visit(browser: Browser, app, **context_options):
    """A new visitor (their own cookies) on the page: (context, page, outside requests, errors)."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    outside: list[str] = []
    context.route("**/*", keep_on_loopback(app.base_url, outside))
    page = context.new_page()
    errors = PageErrors(page)
    open_page(page, app.base_url + "/", errors)
    return context, page, outside, errors


def watch_the_transcript(page: Page) -> None:
    """Record in the page what a visitor sees after they press Enter: how soon the thinking
    bubble shows, and whether reply words appear before the reply's closing badge."""
    page.evaluate("""() => {
        const seen = window.__transcript = {sentAt: null, thinkingAfterMs: null, streamedBeforeDone: false};
        document.addEventListener("keydown", (e) => { if (e.key === "Enter") seen.sentAt = performance.now(); },
                                  true);
        const chat = document.querySelector("#transcript");
        new MutationObserver(() => {
            const bots = chat.querySelectorAll('[data-testid="bot"]');
            const last = bots[bots.length - 1];
            if (!last || seen.sentAt === null) return;
            const text = last.innerText;
            if (seen.thinkingAfterMs === null && text.includes("thinking")) {
                seen.thinkingAfterMs = performance.now() - seen.sentAt;
            }
            const words = text.split("\\n").slice(1).join(" ").trim();
            if (words && !text.includes("thinking") && !last.querySelector("sub")) seen.streamedBeforeDone = true;
        }).observe(chat, {subtree: true, childList: true, characterData: true});
    }""")


def test_a_visitor_types_a_question_gets_an_answer_and_can_be_forgotten(browser: Browser, public_app,
                                                                         tmp_path: Path):
    context, page, outside, errors = visit(browser, public_app)
    try:
        cookie = {c["name"]: c for c in context.cookies(public_app.base_url)}.get("cozy_visitor")
        assert cookie is not None, f"no cozy_visitor cookie after GET /: {context.cookies()}"
        assert cookie["httpOnly"], "the visitor cookie must be HttpOnly"

        typed = page.get_by_placeholder("Say something…")
        # A question with a few sentences to its answer: a one-line reply can reach the page in the
        # same frame as its closing badge on a busy machine, and nothing would show it streamed.
        typed.fill("What is the capital of France? Tell me a little about it.")
        watch_the_transcript(page)
        typed.press("Enter")
        asked, answers = transcript_messages(page)
        expect(asked).to_have_count(1)
        expect(asked.first).to_contain_text("capital of France")
        # The turn is over when its conversation is listed; then the answer is whole.
        entries = conversation_entries(page)
        expect(entries).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
        close_dropdown(page)
        expect(answers).to_have_count(1)
        expect(answers.first).to_have_text(re.compile(r"\w"))
        assert APOLOGY not in answers.first.inner_text()
        seen = page.evaluate("window.__transcript")
        # At once: the question and a thinking bubble, before any answer (no queue between).
        assert seen["thinkingAfterMs"] is not None and seen["thinkingAfterMs"] < 300, seen
        # Live: words of the reply were on screen before the turn ended (its badge comes last).
        assert seen["streamedBeforeDone"], seen

        # Coming back, the conversation is still there (and so the emptiness checked below means something).
        open_page(page, public_app.base_url + "/", errors)
        expect(conversation_entries(page)).to_have_count(1)
        page.get_by_role("option").first.click()
        expect(answers).to_have_count(1)

        page.get_by_role("tab", name="Your data").click()
        page.get_by_role("button", name="Forget me").click()
        expect(page.get_by_text(re.compile("erased"))).to_be_visible()
        expect(asked).to_have_count(0)
        expect(answers).to_have_count(0)
        expect(conversation_entries(page)).to_have_count(0)
        close_dropdown(page)

        open_page(page, public_app.base_url + "/", errors)
        expect(conversation_entries(page)).to_have_count(0)
        close_dropdown(page)
        expect(asked).to_have_count(0)
        assert errors.lines == [], "the page logged errors:\n" + "\n".join(errors.lines)
        assert outside == [], f"the page loads from other servers: {outside}"
    except (AssertionError, Error):
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'page.png'}\nrequests to other servers: {outside}\n"
              f"page errors: {errors.lines}\napp log:\n{public_app.log_tail()}")
        raise
    finally:
        context.close()


def test_a_tool_that_ran_shows_as_a_chip_in_the_reply(browser: Browser, tool_app, tmp_path: Path):
    context, page, outside, errors = visit(browser, tool_app)
    try:
        typed = page.get_by_placeholder("Say something…")
        typed.fill("What time is it?")
        page.get_by_role("button", name="Send").click()
        chat = page.get_by_role("log", name="chatbot conversation")
        chip = chat.get_by_text(re.compile(r"🔧 current_time · \d+ ms"))
        expect(chip).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        expect(chat.get_by_test_id("bot").last).to_contain_text("time for tea", timeout=ANSWER_TIMEOUT_MS)
        expect(chat).not_to_contain_text("<tool")
        # The tools tab's audit log lists the call this visitor made, by the persona's name.
        page.get_by_role("tab", name="Tools").click()
        expect(page.get_by_text(re.compile("current_time")).last).to_be_visible()
        assert errors.lines == [], "the page logged errors:\n" + "\n".join(errors.lines)
        assert outside == [], f"the page loads from other servers: {outside}"
    except (AssertionError, Error):
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'page.png'}\npage errors: {errors.lines}\napp log:\n{tool_app.log_tail()}")
        raise
    finally:
        context.close()


@pytest.mark.parametrize("viewport, must_see", [
    ({"width": 1366, "height": 900}, ("transcript", "input", "tabs")),
    ({"width": 390, "height": 844}, ("transcript", "input")),  # a phone: the transcript above the input
])
def test_the_page_fits_the_screen_without_scrolling(browser: Browser, public_app, viewport, must_see):
    context, page, outside, _ = visit(browser, public_app, viewport=viewport)
    try:
        parts = {"transcript": page.locator("#transcript"), "input": page.get_by_placeholder("Say something…"),
                 "tabs": page.get_by_role("tab", name="Latency")}
        for name in must_see:
            box = parts[name].bounding_box()
            assert box is not None, f"{name} is not on the page"
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], \
                f"{name} is below the fold at {viewport}: {box}"
        transcript, typed = parts["transcript"].bounding_box(), parts["input"].bounding_box()
        assert transcript["y"] < typed["y"], "the transcript comes before the input"
        assert outside == [], f"the page loads from other servers: {outside}"
    finally:
        context.close()


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory) -> Path:
    """What the fake microphone says: silence while the call connects, a question, then a pause."""
    import numpy as np
    import soundfile

    from tests.clients.voice_ws import espeak_clip

    path = tmp_path_factory.mktemp("microphone") / "question.wav"
    speech = espeak_clip("Hello, how are you today?")
    soundfile.write(path, np.concatenate([np.zeros(3 * 16_000, np.int16), speech, np.zeros(12 * 16_000, np.int16)]),
                    16_000, subtype="PCM_16")
    return path


def test_a_spoken_turn_shows_its_state_and_the_reply_as_it_is_spoken(playwright, public_app, question_wav):
    if True:  # one browser with this microphone
        browser = launch(playwright, f"--use-file-for-fake-audio-capture={question_wav}")
        context, page, outside, errors = visit(browser, public_app)
        try:
            page.evaluate("""() => {
                const seen = window.__voice = {states: [], replyWhileSpeaking: false};
                const state = document.querySelector("#voice-state");
                const chat = document.querySelector("#transcript");
                new MutationObserver(() => {
                    const now = state.innerText.split("\\n").find(line => /[A-Z][a-z]+/.test(line)) || "";
                    const word = (now.match(/(Listening|Hearing you|Heard you|Thinking|Speaking)/) || [])[1];
                    if (word && seen.states[seen.states.length - 1] !== word) seen.states.push(word);
                    const bots = chat.querySelectorAll('[data-testid="bot"]');
                    if (word === "Speaking" && bots.length && bots[bots.length - 1].innerText.split("\\n").length > 1)
                        seen.replyWhileSpeaking = true;
                }).observe(document.body, {subtree: true, childList: true, characterData: true});
            }""")
            # One click: the Talk button asks for the microphone and starts the call.
            expect(page.get_by_text("Click to Access Microphone")).to_have_count(0)
            talk = page.locator("#voice button", has_text="Talk")
            expect(talk).to_have_count(1)
            talk.click()
            # The turn is over when the call listens again after speaking.
            page.wait_for_function("window.__voice.states.includes('Speaking') && "
                                   "window.__voice.states.lastIndexOf('Listening') > "
                                   "window.__voice.states.indexOf('Speaking')", timeout=ANSWER_TIMEOUT_MS)
            seen = page.evaluate("window.__voice")
            # Then its conversation is listed, like a typed one, and can be reopened.
            expect(conversation_entries(page)).to_have_count(1)
            close_dropdown(page)
            order = [s for s in seen["states"] if s in ("Heard you", "Thinking", "Speaking")]
            # "Heard you" lasts while the words are transcribed; when the pause already transcribed
            # them (the end-of-turn check waits for those words), "Thinking" follows within a
            # millisecond and the page may show only that.
            assert order.index("Thinking") < order.index("Speaking"), seen
            assert "Heard you" not in order or order.index("Heard you") < order.index("Thinking"), seen
            assert seen["replyWhileSpeaking"], seen
            _, answers = transcript_messages(page)
            expect(answers.last).to_have_text(re.compile(r"\w"))
            assert errors.lines == [], "the page logged errors:\n" + "\n".join(errors.lines)
            assert outside == [], f"the page loads from other servers: {outside}"
        except (AssertionError, Error):
            print("voice states seen:", page.evaluate("window.__voice"), "\napp log:\n", public_app.log_tail())
            raise
        finally:
            context.close()
            browser.close()
