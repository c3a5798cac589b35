"""Qwen-Agent (the Qwen team's agent framework, PyPI `qwen-agent`, pinned in requirements-ci.txt) with qnext serve
as its OpenAI-compatible model server: a function-calling agent with a custom tool runs to completion on the demo
model. Qwen-Agent is configured with `use_raw_api`, so it sends the tools as OpenAI `tools` and reads the server's
`tool_calls` back (the server constrains every call to its schema); its own prompt-based function calling would ask
the model to spell tool-call markup as free text.

Usage: serve_qwen_agent.py --base-url http://127.0.0.1:PORT/v1 --model demo
"""
import argparse
import json
import sys

from qwen_agent.agents import FnCallAgent
from qwen_agent.tools.base import BaseTool, register_tool

CALLS = []


@register_tool("multiply")
class Multiply(BaseTool):
    description = "Multiply two integers and return the product."
    parameters = {
        "type": "object",
        "properties": {"a": {"type": "integer", "description": "first factor"},
                       "b": {"type": "integer", "description": "second factor"}},
        "required": ["a", "b"],
    }

    def call(self, params, **kwargs):
        args = json.loads(params) if isinstance(params, str) else params
        CALLS.append(args)
        return str(int(args["a"]) * int(args["b"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    llm = {"model": a.model, "model_server": a.base_url, "api_key": "EMPTY",
           "generate_cfg": {"use_raw_api": True, "temperature": 0, "max_tokens": 200}}
    bot = FnCallAgent(function_list=["multiply"], llm=llm)
    messages = [{"role": "user", "content": "What is 37 * 12?"}]
    responses = []
    for responses in bot.run(messages=messages):
        pass
    roles = [m["role"] for m in responses]
    print("qwen-agent: roles", roles, "calls", CALLS)
    fn_calls = [m for m in responses if m.get("function_call")]
    assert fn_calls, f"the agent made no function call: {responses}"
    assert all(m["function_call"]["name"] == "multiply" for m in fn_calls), fn_calls
    for m in fn_calls:   # every call the server returned parses and matches the schema
        args = json.loads(m["function_call"]["arguments"])
        assert set(args) <= {"a", "b"} and isinstance(args["a"], int) and isinstance(args["b"], int), args
    assert CALLS, "the tool never ran"
    assert responses[-1]["role"] == "assistant" and responses[-1].get("content"), f"no final answer: {responses[-1]}"
    print("qwen-agent: final answer:", responses[-1]["content"][:200])
    print("serve_qwen_agent: ok")


if __name__ == "__main__":
    sys.exit(main())
