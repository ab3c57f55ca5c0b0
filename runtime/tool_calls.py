"""Tool calling on the transformers engine: tools into the chat template, tool calls out of text.

Rendering goes through the chat template's own `tools` support (transformers
`apply_chat_template(tools=...)`); a template without it gets the tools in its system message
and the Hermes convention (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`), which is
also what the parser reads back, with a bare `{"name", "arguments"|"parameters"}` object or list.
With a named `tool_choice` the whole reply is the arguments (constrained to the function's
schema); with `required` it is a JSON list of calls (see structured.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator

from llm_runtime.errors import InvalidRequest
from llm_runtime.handlers.base import TextStream
from llm_runtime.structured import compact_json
from llm_runtime.values import (
    ChatMessage,
    OutputSpec,
    TextDelta,
    TextResult,
    ToolCall,
    ToolCallChunk,
    ToolSpec,
)

TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
TOOL_CALL_OPEN = "<tool_call>"
FALLBACK_PROMPT = (
    "You may call these functions. To call one, reply with "
    '<tool_call>{{"name": <function name>, "arguments": <arguments object>}}</tool_call>.\n'
    "Functions (JSON schema):\n{tools}"
)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def template_supports_tools(template: str) -> bool:
    """True when the chat template renders a `tools` list itself."""
    return bool(re.search(r"\btools\b", template))


def openai_tool(tool: ToolSpec) -> dict:
    function = {"name": tool.name, "parameters": tool.parameters or {"type": "object"}}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def template_messages(messages: tuple[ChatMessage, ...], native_tools: bool) -> list[dict]:
    """Messages as chat templates take them (assistant tool calls with dict arguments)."""
    return [_template_message(m, native_tools) for m in messages]


def _template_message(message: ChatMessage, native_tools: bool) -> dict:
    if not native_tools and message.role == "tool":
        return {"role": "user", "content": f"<tool_response>{message.content}</tool_response>"}
    out: dict = {"role": message.role, "content": message.content}
    if message.tool_calls:
        if native_tools:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments_value(c.arguments)},
                }
                for c in message.tool_calls
            ]
        else:
            out["content"] = message.content + "".join(_hermes_block(c) for c in message.tool_calls)
    if message.role == "tool":
        out.update(tool_call_id=message.tool_call_id, name=message.name)
    return out


def fallback_system_prompt(messages: list[dict], tools: tuple[ToolSpec, ...]) -> list[dict]:
    """messages with the tools described in the (first) system message."""
    listing = "\n".join(json.dumps(openai_tool(t)["function"]) for t in tools)
    text = FALLBACK_PROMPT.format(tools=listing)
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def require_tool_rendering(accepts_system: bool) -> None:
    """400 when a template without tools support refuses the system message the tools go in."""
    if not accepts_system:
        raise InvalidRequest(
            "This model's chat template supports neither tools nor a system message, so it "
            "cannot be shown the tools. Send the request without 'tools' (or tool_choice "
            "'none'), or use a model whose template supports tools.",
            code="tools_unsupported",
        )


def parse_tool_calls(text: str, output: OutputSpec) -> tuple[str | None, tuple[ToolCall, ...]]:
    """(content left over, tool calls) read from a finished reply in output's tool mode."""
    if output.tool_choice == "function":
        return None, (ToolCall(new_call_id(), output.tool_name or "", text),)
    names = {t.name for t in output.tools}
    candidates = [m.group(1) for m in TOOL_CALL_BLOCK.finditer(text)]
    content = TOOL_CALL_BLOCK.sub("", text).strip() if candidates else text
    if not candidates:
        candidates = [text.strip()]
    calls = tuple(c for raw in candidates for c in _calls_in(raw, names))
    if not calls:
        return text, ()
    return content or None, calls


def _calls_in(raw: str, names: set[str]) -> list[ToolCall]:
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or item.get("name") not in names:
            continue
        arguments = item.get("arguments", item.get("parameters", {}))
        text = arguments if isinstance(arguments, str) else compact_json(arguments)
        calls.append(ToolCall(new_call_id(), item["name"], text))
    return calls


def _arguments_value(arguments: str):
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _hermes_block(call: ToolCall) -> str:
    body = {"name": call.name, "arguments": _arguments_value(call.arguments)}
    return f"<tool_call>{compact_json(body)}</tool_call>"


class ToolCallStream(TextStream):
    """Wraps a text stream: answer text becomes tool calls (streamed as OpenAI deltas)."""

    def __init__(self, inner: TextStream, output: OutputSpec) -> None:
        self.inner, self.output = inner, output
        self.call_id = new_call_id()
        self._final: TextResult | None = None

    @property
    def reasoning(self) -> bool:
        return self.inner.reasoning

    async def __aiter__(self) -> AsyncIterator[TextDelta]:
        named = self.output.tool_choice == "function"
        held: list[TextDelta] = []  # answer text that may still turn out to be a call
        content_started = False
        if named:
            yield self._chunk(0, "", self.call_id, self.output.tool_name)
        async for delta in self.inner:
            if delta.channel != "answer" or content_started:
                yield delta
            elif named:
                yield dataclasses.replace(delta, text="", tool_call=ToolCallChunk(0, delta.text))
            else:
                held.append(delta)
                text = "".join(d.text for d in held)
                if self.output.tool_choice == "auto" and not _may_be_call(text):
                    yield _merged(held)
                    held, content_started = [], True
        result = await self.result()
        if not named:
            for delta in self._tail(result, held, content_started):
                yield delta

    def _tail(self, result: TextResult, held: list[TextDelta], streamed: bool) -> list[TextDelta]:
        if not result.tool_calls:
            return [_merged(held)] if held else []
        pieces = [TextDelta(text=result.text)] if result.text and not streamed else []
        for index, call in enumerate(result.tool_calls):
            pieces.append(self._chunk(index, call.arguments, call.id, call.name))
        return pieces

    def _chunk(self, index: int, arguments: str, call_id=None, name=None) -> TextDelta:
        return TextDelta(text="", tool_call=ToolCallChunk(index, arguments, call_id, name))

    async def result(self) -> TextResult:
        if self._final is None:
            self._final = self._convert(await self.inner.result())
        return self._final

    def _convert(self, result: TextResult) -> TextResult:
        text = result.text
        if self.output.tool_choice == "required":
            text = f"{TOOL_CALL_OPEN}{text}"  # the constrained list, read as one block
        content, calls = parse_tool_calls(text, self.output)
        if calls and self.output.tool_choice == "function":
            calls = (dataclasses.replace(calls[0], id=self.call_id),)
        if not calls:
            return result
        finish = "tool_calls" if result.finish_reason == "stop" else result.finish_reason
        return dataclasses.replace(
            result, text=content or "", tool_calls=calls, finish_reason=finish
        )

    def cancel(self) -> None:
        self.inner.cancel()


def _merged(deltas: list[TextDelta]) -> TextDelta:
    return TextDelta(
        text="".join(d.text for d in deltas),
        logprobs=tuple(lp for d in deltas for lp in d.logprobs),
    )


def _may_be_call(text: str) -> bool:
    """True while text could still turn out to be a tool call (so it is held back)."""
    stripped = text.lstrip()
    if not stripped:
        return True
    return stripped[0] in "{[" or TOOL_CALL_OPEN.startswith(stripped[: len(TOOL_CALL_OPEN)])
