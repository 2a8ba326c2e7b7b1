"""A llama.cpp grammar for replies when tools are on offer: prose, or calls, nothing else.

A 1.5B model left free answers "what time is it?" with a ```json block, a
`<tools>` echo of its prompt, or a call to a function it made up. Under this
grammar its first token decides: either prose, which cannot contain markup
(`<`, `{` or a backtick), or one or two calls

    {"name": <one of the offered names>, "arguments": <that tool's schema>}

in whichever wrapping the model reaches for: Qwen2.5's trained `<tool_call>` tags,
the `<tools>` tags of its prompt, a ```json fence, or none (this model's first
choice; forbidding it sends the model back to explaining the tool in prose).
tool_calls.py reads them all. At most two calls: left free, a small model goes
on calling every tool it sees until its token limit. The arguments follow the
schema the model is shown (compact, as in the prompt); the tool gateway still
checks them in full.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_ROOT = r"""root ::= tool-calls | prose
tool-calls ::= tool-call ("\n" tool-call)?
tool-call ::= "<tool_call>" nl call nl "</tool_call>" | "<tools>" nl call nl "</tools>" | "```" "json"? nl call nl "```" | call
nl ::= "\n"?
prose ::= [^<{`\[ \t\n] [^<{`]*
"""
_SCHEMA_ROOT = re.compile(r"^root ::=", re.M)


@lru_cache(maxsize=64)
def _grammar_text(tools_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    calls = [{"type": "object", "required": ["name", "arguments"],
              "properties": {"name": {"const": tool["function"]["name"]},
                             "arguments": tool["function"].get("parameters") or {"type": "object"}}}
             for tool in json.loads(tools_json)]
    rules = json_schema_to_gbnf(json.dumps({"oneOf": calls} if len(calls) > 1 else calls[0]),
                                prop_order=["name", "arguments"])
    return _ROOT + _SCHEMA_ROOT.sub("call ::=", rules)


def tool_grammar(tools: list[dict[str, Any]]) -> Any:
    """A LlamaGrammar for `tools` (OpenAI function tools, as the prompt shows them), or None."""
    if not tools:
        return None
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(_grammar_text(json.dumps(tools, sort_keys=True)), verbose=False)
