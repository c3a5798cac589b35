#!/usr/bin/env python3
"""Validates qnext's OpenAI request body (tests/data/agent/openai_wire_body.json, written by the C++ test
OpenAIWire.ToolCallArgumentsAreAlwaysJsonStrings with QNEXT_WIRE_BODY_OUT=FILE) against the official `openai`
package's request types (pinned in requirements.txt): every message as a ChatCompletionMessageParam, the tools
as ChatCompletionToolParam, the whole body as CompletionCreateParamsStreaming/NonStreaming; in particular
assistant tool calls' function.arguments must be strings.

Usage: python3 tests/reference/check_openai_wire.py [FILE]
"""
import json
import os
import sys

import openai
import pydantic
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

assert openai.__version__ == "3.63.0", openai.__version__

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "agent",
                                                          "openai_wire_body.json")
body = json.load(open(path))
msg = pydantic.TypeAdapter(ChatCompletionMessageParam)
tool = pydantic.TypeAdapter(ChatCompletionToolParam)
for i, m in enumerate(body["messages"]):
    msg.validate_python(m)
    for c in m.get("tool_calls", []):
        assert isinstance(c["function"]["arguments"], str), f"messages[{i}]: arguments is not a string"
for t in body.get("tools", []):
    tool.validate_python(t)
extra = {k: body[k] for k in ("chat_template_kwargs",) if k in body}   # vLLM/SGLang extension, not OpenAI's
core = {k: v for k, v in body.items() if k not in extra and k != "stream" and k != "stream_options"}
pydantic.TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(core)
print(f"ok: {path} is a valid OpenAI chat.completions request ({len(body['messages'])} messages)")
