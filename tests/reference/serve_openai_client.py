"""The official `openai` Python client (pinned in requirements-ci.txt) against qnext serve on the demo model.

Every reply is also validated against the client's own response types (pydantic model_validate on the raw JSON,
which fails on a wrong type or an unknown finish_reason), not only read through the client's lenient parsing.

Checks: chat, streaming (+ usage), tool calls with every tool_choice mode, parallel calls on/off, arguments as JSON
strings that match their schema, response_format json_schema (client.chat.completions.parse with a pydantic model),
reasoning_content in thinking mode (message and deltas), cached_tokens on a second turn, stop strings, errors
surfaced as the client's exception types, and 32 concurrent streaming clients whose outputs equal sequential runs.

Usage: serve_openai_client.py --base-url http://127.0.0.1:PORT/v1 --model demo
"""
import argparse
import json
import sys
import threading
import typing

import openai
import pydantic
from openai.types.chat import ChatCompletion, ChatCompletionChunk

TOOLS = [
    {"type": "function", "function": {
        "name": "python", "description": "Run Python 3 code in a sandbox and return its stdout, stderr and exit code.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"],
                       "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "shell", "description": "Run a bash command in the sandboxed workspace.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"],
                       "additionalProperties": False}}},
]
ARG_KEYS = {"python": {"code"}, "shell": {"command"}}


def user(text):
    return [{"role": "user", "content": text}]


def create_raw(client, **kw):
    """create() through with_raw_response: the parsed object plus the raw JSON validated by the client's types."""
    raw = client.chat.completions.with_raw_response.create(**kw)
    if kw.get("stream"):
        chunks = []
        for line in raw.http_response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line[len("data: "):]
            if data == "[DONE]":
                break
            chunks.append(ChatCompletionChunk.model_validate(json.loads(data)))
        return chunks
    body = json.loads(raw.http_response.text)
    return ChatCompletion.model_validate(body)


def check_calls(calls):
    for c in calls:
        assert c.type == "function" and c.id.startswith("call_"), c
        assert isinstance(c.function.arguments, str), "arguments must be a JSON string"
        args = json.loads(c.function.arguments)
        assert set(args) == ARG_KEYS[c.function.name], (c.function.name, args)
        assert all(isinstance(v, str) for v in args.values()), args


def assemble(chunks):
    content, reasoning, finish, calls, usage = "", "", None, {}, None
    for ch in chunks:
        if ch.usage is not None:
            usage = ch.usage
        if not ch.choices:
            continue
        c = ch.choices[0]
        finish = c.finish_reason or finish
        d = c.delta
        content += d.content or ""
        reasoning += (d.model_extra or {}).get("reasoning_content") or ""
        for tc in d.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
                slot["name"] = tc.function.name
            slot["arguments"] += tc.function.arguments or ""
    return content, reasoning, finish, calls, usage


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key="none", max_retries=0, timeout=60)
    M = a.model

    # /v1/models
    models = [m.id for m in client.models.list()]
    assert models == [M], models

    # tool_choice required: a python call, arguments a JSON string matching the schema.
    r = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="required",
                   temperature=0, max_tokens=120)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls", r
    assert msg.tool_calls and msg.tool_calls[0].function.name == "python", msg
    check_calls(msg.tool_calls)
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    print("required:", msg.tool_calls[0].function.arguments)

    # The same request streamed: the deltas rebuild the same calls; usage arrives in the last chunk.
    chunks = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="required",
                        temperature=0, max_tokens=120, stream=True, stream_options={"include_usage": True})
    content, _, finish, calls, usage = assemble(chunks)
    assert finish == "tool_calls", finish
    assert [(c["name"], c["arguments"]) for _, c in sorted(calls.items())] == \
           [(c.function.name, c.function.arguments) for c in msg.tool_calls], (calls, msg.tool_calls)
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage
    assert chunks[0].choices[0].delta.role == "assistant"

    # parallel_tool_calls false: exactly one call.
    r1 = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="required",
                    parallel_tool_calls=False, temperature=0, max_tokens=120)
    assert len(r1.choices[0].message.tool_calls) == 1, r1
    # A named tool: exactly one call of it.
    rn = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS,
                    tool_choice={"type": "function", "function": {"name": "shell"}}, temperature=0, max_tokens=120)
    assert [c.function.name for c in rn.choices[0].message.tool_calls] == ["shell"], rn
    check_calls(rn.choices[0].message.tool_calls)
    # none: no calls.
    r0 = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="none",
                    temperature=0, max_tokens=30)
    assert not r0.choices[0].message.tool_calls and r0.choices[0].finish_reason in ("stop", "length"), r0

    # Turn 2: the tool result goes back; the prompt is served from the kept state.
    call = r1.choices[0].message.tool_calls[0]
    turn2 = user("What is 37 * 12?") + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "444\n"}]
    r2 = create_raw(client, model=M, messages=turn2, tools=TOOLS, temperature=0, max_tokens=60)
    cached = r2.usage.prompt_tokens_details.cached_tokens
    assert cached > r2.usage.prompt_tokens // 2, r2.usage
    assert "444" in (r2.choices[0].message.content or ""), r2
    print("turn 2:", r2.choices[0].message.content, "| cached", cached, "of", r2.usage.prompt_tokens)

    # Thinking mode: reasoning_content in the message and in the deltas.
    think = dict(model=M, messages=user("Reverse the string 'stressed'."), tools=TOOLS, temperature=0, max_tokens=200,
                 extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    rt = create_raw(client, **think)
    reasoning = (rt.choices[0].message.model_extra or {}).get("reasoning_content")
    assert reasoning, rt
    _, streamed_reasoning, _, _, _ = assemble(create_raw(client, stream=True, **think))
    assert streamed_reasoning.strip() == reasoning, (streamed_reasoning, reasoning)
    print("reasoning:", reasoning[:80].replace("\n", " "))

    # Structured output through the client's parse() helper (strict json_schema from a pydantic model).
    class Answer(pydantic.BaseModel):
        answer: int = pydantic.Field(ge=0, le=1000)
        unit: typing.Literal["apples", "pears"]

    p = client.chat.completions.parse(model=M, messages=user("How many apples? Answer in JSON."),
                                      response_format=Answer, temperature=0, max_tokens=200)
    parsed = p.choices[0].message.parsed
    assert isinstance(parsed, Answer), p
    print("parsed:", parsed)
    j = create_raw(client, model=M, messages=user("Give me a JSON object."), response_format={"type": "json_object"},
                   temperature=0, max_tokens=60)
    assert isinstance(json.loads(j.choices[0].message.content), dict), j

    # Stop strings.
    full = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="none",
                      temperature=0, max_tokens=30).choices[0].message.content
    stop = full[6:9]
    rs = create_raw(client, model=M, messages=user("What is 37 * 12?"), tools=TOOLS, tool_choice="none",
                    temperature=0, max_tokens=30, stop=[stop])
    assert rs.choices[0].finish_reason == "stop" and rs.choices[0].message.content == full[:full.find(stop)].strip(), \
        (full, stop, rs)

    # Errors as the client's exception types.
    def expect(exc, **kw):
        try:
            client.chat.completions.create(**kw)
        except exc as e:
            assert isinstance(e.body, dict) and "message" in e.body, e.body
            return e
        raise AssertionError(f"expected {exc.__name__} for {kw}")

    e = expect(openai.BadRequestError, model=M, messages=user("hi"), n=2)
    assert e.status_code == 400 and e.param == "n", (e.status_code, e.param)
    expect(openai.NotFoundError, model="gpt-4o", messages=user("hi"))
    expect(openai.BadRequestError, model=M, messages=user("hi"), temperature=5)
    expect(openai.BadRequestError, model=M, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}])
    expect(openai.BadRequestError, model=M, messages=user("hi"), tools=TOOLS,
           tool_choice={"type": "function", "function": {"name": "nope"}})

    # 32 concurrent streaming clients x 2 requests: no error, every output equal to its sequential run.
    questions = ["What is 37 * 12?", "What is 3 + 4?", "What is 100 / 8?", "What is 2 ** 10?"]

    def run(q):
        chunks = create_raw(client, model=M, messages=user(q), tools=TOOLS, tool_choice="required", temperature=0,
                            max_tokens=80, stream=True)
        c, _, f, calls, _ = assemble(chunks)
        return (c, f, tuple((v["name"], v["arguments"]) for _, v in sorted(calls.items())))

    sequential = {q: run(q) for q in questions}
    results, errors = {}, []

    def worker(i):
        try:
            for k in range(2):
                q = questions[(i + k) % len(questions)]
                results[(i, k)] = (q, run(q))
        except Exception as ex:  # noqa: BLE001 -- collected and reported below
            errors.append(repr(ex))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 64
    for (q, out) in results.values():
        assert out == sequential[q], (q, out, sequential[q])
    print("concurrency: 64 streamed requests from 32 clients equal their sequential runs")
    print("serve_openai_client: ok")


if __name__ == "__main__":
    sys.exit(main())
