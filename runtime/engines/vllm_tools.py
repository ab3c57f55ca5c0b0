"""Forced tool calls on vLLM: a named ``tool_choice`` or ``"required"``, constrained by schema.

vLLM 0.32 constrains only the function name of a forced call (a random-weight model then returns
``"arguments": 85``). We ask it instead for JSON matching ``{"name": <a tool>, "arguments":
<that tool's parameters schema>}`` (xgrammar, no free whitespace; the tools still reach the chat
template) and turn the answer into ``tool_calls``, so arguments always validate. ``auto`` and
``none`` stay vLLM's own (its tool parser picks calls out of free text).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from llm_runtime.errors import InvalidRequest

CUT_CALL = re.compile(r'^\{"name":"([^"]*)","arguments":(.*)$', re.DOTALL)


def forced_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools the request forces a call to (the named one, or all for "required"), else None."""
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if choice == "required" and not tools:
        raise InvalidRequest('tool_choice "required" needs a non-empty "tools" list.')
    if choice == "required":
        return list(tools)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        named = [t for t in tools if (t.get("function") or {}).get("name") == name]
        if not named:
            raise InvalidRequest(f"tool_choice names the function {name!r}, which is not in tools.")
        return named
    return None


def constrained(body: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The request vLLM gets: the tools for the template, the call's schema as the constraint."""
    if body.get("response_format") not in (None, {"type": "text"}):
        raise InvalidRequest("A forced tool call and response_format cannot be combined; drop one.")
    if int(body.get("n") or 1) > 1 and body.get("stream"):
        raise InvalidRequest("Streaming a forced tool call takes n=1.")
    options = [_call_schema(tool) for tool in tools]
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    return {**body, "tool_choice": "none", "structured_outputs": {"json": schema}}


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": function.get("name")}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def tool_calls(content: str | None, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The constrained JSON as OpenAI ``tool_calls`` (a cut-off answer keeps its raw text)."""
    try:
        call = json.loads(content or "")
        name, arguments = call["name"], json.dumps(call["arguments"], separators=(",", ":"))
    except (ValueError, KeyError, TypeError):  # cut off by max_tokens: the arguments so far
        cut = CUT_CALL.match(content or "")
        name = cut.group(1) if cut else (tools[0].get("function") or {}).get("name")
        arguments = cut.group(2) if cut else content or ""
    function = {"name": name, "arguments": arguments}
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": function}]


def answer_with_calls(answer: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A non-streamed chat answer with each choice's JSON content turned into tool_calls."""
    for choice in answer.get("choices") or ():
        message = choice.get("message") or {}
        message["tool_calls"] = tool_calls(message.get("content"), tools)
        message["content"] = None
        if choice.get("finish_reason") == "stop":
            choice["finish_reason"] = "tool_calls"
    return answer


class StreamedCalls:
    """Streaming: keeps each choice's content back and sends its call when the choice ends."""

    def __init__(self, tools: list[dict[str, Any]]) -> None:
        self.tools = tools
        self.content: dict[int, list[str]] = {}

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send, or None when holding its content back leaves nothing in it."""
        for choice in chunk.get("choices") or ():
            delta = choice["delta"] = choice.get("delta") or {}
            self.content.setdefault(choice.get("index", 0), []).append(
                delta.pop("content", None) or ""
            )
            if choice.get("finish_reason"):
                text = "".join(self.content.pop(choice.get("index", 0), []))
                calls = tool_calls(text, self.tools)
                delta["tool_calls"] = [{"index": 0, **calls[0]}]
                if choice["finish_reason"] == "stop":
                    choice["finish_reason"] = "tool_calls"
        empty = all(
            not c.get("delta") and not c.get("finish_reason") for c in chunk.get("choices") or ()
        )
        return None if empty and chunk.get("choices") and not chunk.get("usage") else chunk
