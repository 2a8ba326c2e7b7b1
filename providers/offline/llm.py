"""A local GGUF chat model on llama.cpp (llama-cpp-python).

One `Llama` object per process, behind a lock: it keeps the previous prompt's
KV cache, so a follow-up turn that repeats the same system prompt and history
only evaluates the new tokens. That reuse is most of a fast second turn.

`prefill` evaluates a prompt ahead of its turn (a voice turn's words are known
during the pause, before the turn is taken): it only runs when the model is
free, and stops at the next chunk of tokens when it is cancelled or anyone asks
the model for a real reply. What it evaluated stays in the KV cache, so a turn
whose prompt begins the same way starts from there. Given the turn's options it
also writes the reply ahead (`WriteAhead`), a token at a time, until someone wants
the model: a reply to that very prompt, with the same sampling, starts with those
tokens (they are a sample like any other) and goes on from them.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.base import CancelFlag, ChatDelta, ChatOptions, ToolCall
from providers.foreground import FOREGROUND
from providers.offline.tool_calls import ToolCallParser
from providers.offline.tool_grammar import tool_grammar

log = logging.getLogger(__name__)


def _for_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat templates render tool-call arguments with `tojson`: they expect an object,
    where the OpenAI message format carries a JSON string (which would be quoted twice
    and teach the model to answer in that broken shape)."""
    prepared = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = dict(call.get("function", {}))
                try:
                    function["arguments"] = json.loads(function.get("arguments") or "{}")
                except (TypeError, ValueError):
                    pass
                calls.append({**call, "function": function})
            message = {**message, "tool_calls": calls, "content": message.get("content") or ""}
        prepared.append(message)
    return prepared


# Said right after the template's tool list, where a small model heeds it most: a
# coding model otherwise tells the user how to call `current_time` instead of
# calling it (measured in bench/tool_reliability.py). No double quotes: it goes
# into the template's own string literal.
TOOL_USE_NOTE = ("When one of the tools above can answer, your whole reply is the tool call, with no preamble "
                 "and no explanation: you run tools yourself, the user cannot. When its result comes back, "
                 "answer the user in plain words; its first sentence is written to be spoken.")
_TOOLS_HEADER_END = "</tool_call><|im_end|>"


def _with_tool_note(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For a template without Qwen's tool header: the note joins the system prompt."""
    if messages and messages[0].get("role") == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{TOOL_USE_NOTE}"}, *messages[1:]]
    return [{"role": "system", "content": TOOL_USE_NOTE}, *messages]


_PROMPT_ONLY_KEYS = {"title", "additionalProperties", "maxLength", "minLength", "maxItems", "minItems",
                     "pattern", "format", "examples"}


def _compact(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _compact(v) for k, v in schema.items() if k not in _PROMPT_ONLY_KEYS}
    if isinstance(schema, list):
        return [_compact(v) for v in schema]
    return schema


def compact_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool schemas as a small model reads them: every prompt token costs prefill time
    on a CPU, and limits like maxLength are enforced by the tool gateway anyway."""
    return [{**tool, "function": {**tool["function"],
                                  "parameters": _compact(tool["function"].get("parameters") or {})}}
            for tool in tools]


_DOUBLED_EXAMPLE = '{{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}}'
_SINGLE_EXAMPLE = '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}'


def _chat_formatter(llm: Any, template: str) -> Any:
    from llama_cpp import llama_chat_format

    eos = llm._model.token_get_text(llm.token_eos())
    bos = llm._model.token_get_text(llm.token_bos())
    return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                                 stop_token_ids=[llm.token_eos()])


def _prepare_chat_template(llm: Any) -> tuple[bool, Any]:
    """Qwen2.5's template, with the tool note after its tool list; (True if the note is in,
    the formatter replies are rendered with, or None for a model without a template of its own).

    Some Qwen2.5 GGUF uploads also carry a template whose tool-call example renders
    with doubled braces, and small models copy it ({{"name": ...}}): it is rendered
    with single braces, as the upstream template does."""
    template = llm.metadata.get("tokenizer.chat_template", "")
    if not template or llm.chat_format != "chat_template.default":
        return False, None
    if _TOOLS_HEADER_END not in template:
        return False, _chat_formatter(llm, template)
    template = template.replace(_DOUBLED_EXAMPLE, _SINGLE_EXAMPLE).replace(
        _TOOLS_HEADER_END, f"</tool_call>\\n\\n{TOOL_USE_NOTE}<|im_end|>", 1)
    formatter = _chat_formatter(llm, template)
    llm._chat_handlers["chat_template.default"] = formatter.to_chat_handler()
    return True, formatter


def compact_prompt_cache(capacity_bytes: int) -> Any:
    """llama-cpp-python's RAM prompt cache, bounded by what it really holds: its size
    counts every byte of each kept state (the stock one leaves `scores` out). The states
    come from `lean_states`, which keeps no copy of `scores`."""
    from llama_cpp import LlamaRAMCache

    class CompactPromptCache(LlamaRAMCache):
        @property
        def cache_size(self) -> int:
            return sum(state.llama_state_size + state.scores.nbytes + state.input_ids.nbytes
                       for state in self.cache_state.values())

    return CompactPromptCache(capacity_bytes=capacity_bytes)


def lean_states(llm: Any) -> None:
    """Save and restore `llm`'s state without its `scores`: n_batch x vocabulary float32
    rows (~155 MB for Qwen's 152k vocabulary), never read back without `logits_all`
    (sampling reads llama.cpp's own logits, and a restored state is decoded again before
    sampling). llama-cpp-python copies them on every save, at the end of each completion,
    and rewrites them on every load: 40 and 70 ms of the model's lock here, a speculative
    prefill's included, with the reply waiting on it. A 1x1 stand-in keeps the shape
    LlamaState expects."""
    import ctypes

    import llama_cpp
    import numpy as np

    def save_state() -> Any:
        size = llama_cpp.llama_state_get_size(llm._ctx.ctx)
        buffer = (ctypes.c_uint8 * int(size))()
        used = int(llama_cpp.llama_state_get_data(llm._ctx.ctx, buffer, size))
        if used > int(size):
            raise RuntimeError("Failed to copy llama state data")
        return llama_cpp.LlamaState(scores=np.zeros((1, 1), dtype=np.single), input_ids=llm.input_ids.copy(),
                                    n_tokens=llm.n_tokens, llama_state=bytes(buffer)[:used],
                                    llama_state_size=used, seed=llm._seed)

    def load_state(state: Any) -> None:
        llm.input_ids = state.input_ids.copy()
        llm.n_tokens = state.n_tokens
        llm._seed = state.seed
        llm._requires_eval = True  # its logits are not the restored prompt's: decode again first
        data = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
        if llama_cpp.llama_state_set_data(llm._ctx.ctx, data, state.llama_state_size) != state.llama_state_size:
            raise RuntimeError("Failed to set llama state data")

    llm.save_state, llm.load_state = save_state, load_state


# How far a speculative prefill runs before it looks at its cancel flag: about 0.3 s of
# the 1.5B on two cores (54 tokens/s in chunks of 16, against 63 in one batch).
PREFILL_CHUNK_TOKENS = 16


# How many reply tokens a prefill may write ahead while the turn is still being decided:
# more than a first clause, and a bound on what a turn that never comes costs.
AHEAD_TOKENS = 32


# Stands for the user's words while the template is rendered, to find where they go.
_WORDS_MARK = "\u2063WORDS\u2063"


class _PrefillStopped(Exception):
    """A speculative prefill gave the model back (cancelled, or a real reply wants it)."""


@dataclass
class _Ahead:
    """Reply tokens sampled for `prompt` before anyone asked for the reply."""

    prompt: list[int]
    sampling: tuple[Any, ...]
    tokens: list[int]


class WriteAhead:
    """Keeps the tokens a prefill samples, and hands them to the reply to the same prompt.

    It wraps `Llama.generate`, below which every completion's prompt and tokens pass, so
    llama-cpp-python still does all the sampling, stop and detokenising: the reply is given
    the kept tokens as if it had just sampled them, then generation goes on after them (the
    KV cache holds all but the last, so only that one is evaluated)."""

    def __init__(self, llm: Any):
        self.recording: _Ahead | None = None  # a prefill writing ahead now
        self.kept: _Ahead | None = None
        self.sampling: tuple[Any, ...] = ()  # the settings of the completion about to run
        generate = llm.generate

        def generate_from_ahead(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            if self.recording is not None:
                self.recording.prompt = list(tokens)
                for token in generate(tokens, *args, **kwargs):
                    self.recording.tokens.append(token)
                    yield token
                return
            kept, self.kept = self.kept, None  # whatever runs now moves the KV cache on
            if kept is None or not kept.tokens or kept.sampling != self.sampling or kept.prompt != list(tokens):
                yield from generate(tokens, *args, **kwargs)
                return
            log.debug("reply starts with %d tokens written ahead", len(kept.tokens))
            self.used = len(kept.tokens)
            yield from kept.tokens
            yield from generate([*tokens, *kept.tokens], *args, **kwargs)

        self.used = 0  # tokens the last reply took from a prefill's
        llm.generate = generate_from_ahead

    def record(self, sampling: tuple[Any, ...]) -> _Ahead:
        self.kept = None
        self.recording = _Ahead([], sampling, [])
        return self.recording

    def keep(self, ahead: _Ahead | None) -> None:
        self.recording = None
        self.kept = ahead if ahead is not None and ahead.tokens else None


class TokenCounter:
    """Counts a call's tokens with the model's own tokenizer.

    llama-cpp-python's streamed chat completion reports no usage. Every completion
    hands its tokenized prompt (template and tools included) to `Llama.generate` and
    takes the reply from it a token at a time, so counting there is exact."""

    def __init__(self, llm: Any):
        from llama_cpp import llama_vocab_is_eog

        self.prompt_tokens = 0
        self.completion_tokens = 0
        generate = llm.generate

        def counting(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            self.prompt_tokens += len(tokens)
            for token in generate(tokens, *args, **kwargs):
                if not llama_vocab_is_eog(llm._model.vocab, token):  # the end mark is not reply
                    self.completion_tokens += 1
                yield token

        llm.generate = counting

    def reset(self) -> None:
        self.prompt_tokens = self.completion_tokens = 0


@dataclass
class _Completion:
    calls: list[ToolCall]
    finish_reason: str | None
    wrote_text: bool
    dropped: list[str]


class LlamaChatModel:
    def __init__(self, model_path: Path, name: str, threads: int = 2, decode_threads: int | None = None,
                 context_tokens: int = 4096, prompt_cache_bytes: int = 512 * 1024 * 1024,
                 tool_grammar: bool = True):
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "llama-cpp-python is not installed: run `make setup` (it builds it for this CPU)"
            ) from exc
        self.name = f"offline-{name}"
        self.model_id = name
        self.tool_grammar = tool_grammar  # prose or offered calls only (tool_grammar.py)
        self._llm = Llama(
            model_path=str(model_path), n_ctx=context_tokens, n_threads=decode_threads or threads,
            n_threads_batch=threads, n_batch=256, verbose=False,
        )
        self._tool_note_in_template, self._formatter = _prepare_chat_template(self._llm)
        # Evaluated prompt prefixes (persona prompt + tools) kept in RAM, so switching
        # persona or user does not re-read a thousand tokens of tool schemas.
        self._llm.set_cache(compact_prompt_cache(prompt_cache_bytes))
        lean_states(self._llm)
        evaluate = self._llm.eval

        def eval_when_foreground_free(tokens: Any) -> None:
            FOREGROUND.wait()  # a reply's first clause is being voiced: it gets the cores first
            evaluate(tokens)

        self._llm.eval = eval_when_foreground_free
        self._ahead = WriteAhead(self._llm)  # below the counter: tokens written ahead count as the reply's
        self._tokens = TokenCounter(self._llm)  # read under the lock: one call at a time
        self._lock = threading.Lock()
        self._wanted = 0  # real replies waiting for the lock: a prefill gives way to them
        self._wanted_lock = threading.Lock()

    def _want(self, delta: int) -> None:
        with self._wanted_lock:
            self._wanted += delta

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        self._want(1)
        try:
            self._lock.acquire()
        finally:
            self._want(-1)
        try:
            self._tokens.reset()
            tools = compact_tools(options.tools)
            done = yield from self._complete(messages, options, tools, cancelled)
            if tools and done.dropped and not (done.calls or done.wrote_text) and done.finish_reason == "stop":
                # Only markup for a tool nobody offered: ask again for words, without tools.
                log.info("%s: dropped a call to no offered tool; answering without tools", self.name)
                done = yield from self._complete(messages, options, [], cancelled)
            finish_reason = "tool_calls" if done.calls and done.finish_reason != "cancelled" else done.finish_reason
            yield ChatDelta(tool_calls=tuple(done.calls), finish_reason=finish_reason or "stop",
                            prompt_tokens=self._tokens.prompt_tokens,
                            completion_tokens=self._tokens.completion_tokens)
        finally:
            self._lock.release()

    def _prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages as the chat template gets them (a real reply and its prefill alike)."""
        noted = tools and not self._tool_note_in_template
        return _for_template(_with_tool_note(messages) if noted else messages)

    @staticmethod
    def _sampling(options: ChatOptions, tools: list[dict[str, Any]]) -> tuple[Any, ...]:
        """What must match for tokens written ahead to be this completion's own sample."""
        return options.temperature, options.seed, bool(tools)

    def _complete(self, messages: list[dict[str, Any]], options: ChatOptions, tools: list[dict[str, Any]],
                  cancelled: CancelFlag | None) -> Generator[ChatDelta, None, _Completion]:
        self._ahead.sampling, self._ahead.used = self._sampling(options, tools), 0
        chunks = self._llm.create_chat_completion(
            messages=self._prompt(messages, tools), stream=True, temperature=options.temperature, max_tokens=options.max_tokens,
            **({"seed": options.seed % 2 ** 32} if options.seed is not None else {}),  # llama.cpp: uint32
            tools=tools or None, grammar=tool_grammar(tools) if self.tool_grammar else None,
        )
        parser = ToolCallParser({t["function"]["name"] for t in tools})
        finish_reason, wrote_text = None, False
        try:
            for chunk in chunks:
                if cancelled is not None and cancelled.is_set():
                    finish_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                if text:
                    shown = parser.feed(text)
                    if shown:
                        wrote_text = True
                        yield ChatDelta(text=shown)
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            chunks.close()  # frees the model for the next caller even when the reader stops early
        rest, calls = parser.finish()
        if rest:
            wrote_text = True
            yield ChatDelta(text=rest)
        if parser.dropped:
            log.debug("%s kept tool markup from the reply: %r", self.name, parser.dropped)
        return _Completion(calls, finish_reason, wrote_text, parser.dropped)

    def prime(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
        """Evaluate a prompt prefix ahead of time, so the first real turn starts warm."""
        for _ in self.stream(messages, ChatOptions(max_tokens=1, temperature=0, tools=tools)):
            pass

    def prefill(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                cancelled: CancelFlag, ahead: ChatOptions | None = None, unfinished: bool = False) -> bool:
        """Evaluate the prompt a reply to `messages` would start with (`tools` as the turn
        will offer them), if the model is free; True when all of it was evaluated.

        Without `ahead`, nothing is generated: one token is sampled and dropped, so the
        evaluated prompt lands in the RAM prompt cache like a real call's. With the turn's
        options (and no tools: a tool call's grammar is not written ahead), the reply is
        written on, up to AHEAD_TOKENS, until someone wants the model; a reply to this
        prompt with these options starts with what was written. Cancelled, it is dropped.

        `unfinished`: the last message is the user's, still being spoken (words so far, or
        none yet): the prompt is evaluated through those words and no further. What the
        template puts after them (the end of the message, the reply's header) would be read
        again once more words come, and reading it costs the 1.5B ~0.17 s on two cores."""
        if not self._lock.acquire(blocking=False):
            return False  # someone's reply is running: speculation never delays it
        evaluate = self._llm.eval
        evaluated = 0

        def eval_while_unwanted(tokens: Any) -> None:
            nonlocal evaluated
            for start in range(0, len(tokens), PREFILL_CHUNK_TOKENS):
                if cancelled.is_set() or self._wanted:
                    raise _PrefillStopped()
                chunk = tokens[start:start + PREFILL_CHUNK_TOKENS]
                evaluate(chunk)
                evaluated += len(chunk)

        compact = compact_tools(tools)
        # Not with a seed either: the reply's own sampling would then not be what that seed gives.
        writing = ahead is not None and not compact and ahead.seed is None and not unfinished
        recording = self._ahead.record(self._sampling(ahead, compact)) if writing else None
        if not writing:  # its own one-token completion must not take a reply's tokens
            self._ahead.keep(None)
        self._llm.eval = eval_while_unwanted  # llama-cpp evaluates a prompt in one call otherwise
        try:
            words_so_far = self._tokens_through_last_words(messages, compact) if unfinished else None
            if words_so_far is not None:
                self._evaluate_prefix(words_so_far, eval_while_unwanted)
                return True
            sampling = ({"max_tokens": min(ahead.max_tokens, AHEAD_TOKENS), "temperature": ahead.temperature}
                        if writing else {"max_tokens": 1, "temperature": 0})
            for _ in self._llm.create_chat_completion(messages=self._prompt(messages, compact), stream=True,
                                                      tools=compact or None, **sampling):
                pass
            return True
        except _PrefillStopped:
            return bool(recording and recording.tokens)  # a token was sampled: the prompt was all read
        finally:
            log.debug("%s: prefill evaluated %d new tokens, wrote %d ahead", self.name, evaluated,
                      len(recording.tokens) if recording else 0)
            self._llm.eval = evaluate
            self._ahead.keep(recording if recording is not None and not cancelled.is_set() else None)
            self._lock.release()

    def _tokens_through_last_words(self, messages: list[dict[str, Any]],
                                   tools: list[dict[str, Any]]) -> list[int] | None:
        """The prompt's tokens up to the end of the last message's words, as the reply's
        template renders them; None if that cannot be told (no template of our own, or the
        last message is not the user's)."""
        if self._formatter is None or not messages or messages[-1].get("role") != "user":
            return None
        words = messages[-1].get("content") or ""
        if not isinstance(words, str):
            return None
        marked = [*messages[:-1], {**messages[-1], "content": _WORDS_MARK}]
        rendered = self._formatter(messages=self._prompt(marked, tools), functions=None, function_call=None,
                                   tools=tools or None, tool_choice=None)
        at = rendered.prompt.rfind(_WORDS_MARK)
        if at < 0:
            return None
        return self._llm.tokenize((rendered.prompt[:at] + words).encode("utf-8"),
                                  add_bos=not rendered.added_special, special=True)

    def _evaluate_prefix(self, tokens: list[int], evaluate: Any) -> None:
        """Evaluate `tokens` on from what the KV cache, or the RAM prompt cache, already holds
        of them (as llama-cpp's own completion does for a prompt), sampling nothing."""
        llm = self._llm
        common = type(llm).longest_token_prefix
        kept = common(llm.input_ids[:llm.n_tokens].tolist(), tokens)
        try:  # a prompt kept in RAM may start the same way for longer (after a turn with tools, say)
            cached = llm.cache[tokens] if llm.cache is not None else None
        except KeyError:
            cached = None
        from_cache = common(cached.input_ids[:cached.n_tokens].tolist(), tokens) if cached is not None else 0
        if from_cache > kept:
            llm.load_state(cached)
            kept = from_cache
        if kept < len(tokens):
            llm.n_tokens = kept  # llama-cpp's eval drops the KV cache past this first
            evaluate(tokens[kept:])

    def warmup(self) -> None:
        for _ in self.stream([{"role": "user", "content": "Hi"}], ChatOptions(max_tokens=1)):
            pass
