#!/usr/bin/env python3
"""Golden renderings of the official Qwen3.5 / Qwen3.6 chat template (model/templates/qwen35.jinja, verbatim from
llama.cpp's template collection) by HF transformers' apply_chat_template (jinja2), for qnext's native renderer.

Pinned peers: transformers 5.23.0, jinja2 3.1.6. CI never runs this; it writes
  tests/data/text/qwen35/template_cases.jsonl  {"request", "prompt"} or {"request", "error"}
The requests are make_text_golden.py's generated conversations (tests/reference/text_corpus.py: tool calls with
nested, array and number arguments, parallel calls, multi-turn, reasoning in every spelling, thinking on/off,
content lists) plus Qwen3.5 cases. Two documented differences from plain jinja2, applied here so that the golden
says what qnext must do:
  - tool-call arguments given as a JSON string holding an object (the OpenAI wire form) are rendered as that
    object (jinja2's |items raises on a string; vLLM and qnext parse it);
  - image / video content items are an error ("vision not supported"): qnext runs the text model only.

Usage: python3 tests/reference/make_qwen35_template_golden.py
"""
import copy
import json
import os
import random
import sys

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(__file__))
import text_corpus  # noqa: E402

assert transformers.__version__ == "5.23.0", transformers.__version__
assert jinja2.__version__ == "3.1.6", jinja2.__version__

HERE = os.path.dirname(__file__)
REPO = os.path.join(HERE, "..", "..")
DATA = os.path.join(REPO, "tests", "data", "text")


def extra_requests(rng):
    w = {"type": "function", "function": {"name": "write_file", "description": "Write a file.",
                                          "parameters": {"type": "object", "properties": {
                                              "path": {"type": "string"}, "content": {"type": "string"},
                                              "mode": {"type": "integer"}, "tags": {"type": "array"},
                                              "opts": {"type": "object"}}, "required": ["path", "content"]}}}
    tools = text_corpus.TOOLS[:2] + [w]
    call = lambda name, args: {"type": "function", "function": {"name": name, "arguments": args}}  # noqa: E731
    reqs = [
        {"messages": [{"role": "user", "content": "write it"},
                      {"role": "assistant", "content": "", "tool_calls": [
                          call("write_file", {"path": "a.py", "content": "print(1)\nprint(2)\n", "mode": 420,
                                              "tags": ["x", 1, None], "opts": {"k": [1.5, True]}})]},
                      {"role": "tool", "content": "ok"}], "tools": tools, "add_generation_prompt": True},
        {"messages": [{"role": "system", "content": [{"type": "text", "text": " sys "}, {"text": "tem"}]},
                      {"role": "user", "content": "both cities"},
                      {"role": "assistant", "content": "Checking both.", "reasoning_content": "\nparallel\n",
                       "tool_calls": [call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Oslo"})]},
                      {"role": "tool", "content": "18"}, {"role": "tool", "content": "9"},
                      {"role": "assistant", "content": "<think>\ncompare\n</think>\n\nParis is warmer."},
                      {"role": "user", "content": "thanks"}], "tools": tools, "add_generation_prompt": True,
         "enable_thinking": False},
        {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True, "enable_thinking": True},
        {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True, "enable_thinking": False},
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": "what?"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "video", "video": "v.mp4"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "<tool_response>only</tool_response>"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",
                                                          "tool_calls": [call("search", "not json")]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",
                                                          "tool_calls": [{"function": {"name": 7, "arguments": {}}}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  ", "tool_calls": [
            call("search", {"q": "\u00a0x\u3000"}), call("run_shell", {"cmd": "echo", "timeout": 1e-05})]}],
         "tools": tools},
        {"messages": [{"role": "user", "content": "\u2003 spaced \u00a0"}, {"role": "assistant", "content": "x"},
                      {"role": "user", "content": "again"}, {"role": "assistant", "content": "y",
                                                             "reasoning_content": "r2"}]},
    ]
    return reqs


def vision(req):
    for m in req.get("messages", []):
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list):
            for item in c:
                if isinstance(item, dict) and ("image" in item or "image_url" in item or "video" in item or
                                               item.get("type") in ("image", "video")):
                    return True
    return False


def parsed_arguments(req):
    """The request with JSON-string tool-call arguments that hold an object replaced by that object."""
    req = copy.deepcopy(req)
    for m in req.get("messages", []):
        for call in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            fn = call.get("function", call) if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                try:
                    v = json.loads(fn["arguments"])
                except ValueError:
                    continue
                if isinstance(v, dict):
                    fn["arguments"] = v
    return req


def main():
    hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(DATA, "tokenizer.json"))
    with open(os.path.join(REPO, "model", "templates", "qwen35.jinja")) as f:
        tpl = f.read()
    rng = random.Random(35)
    reqs = text_corpus.chat_requests(rng, "qwen35") + text_corpus.chat_requests(rng, "qwen35") + extra_requests(rng)
    rows, errors = [], 0
    for req in reqs:
        if vision(req):
            rows.append({"request": req, "error": "vision"})
            errors += 1
            continue
        r = parsed_arguments(req)
        kwargs = {"enable_thinking": r["enable_thinking"]} if "enable_thinking" in r else {}
        try:
            prompt = hf.apply_chat_template(r["messages"], tools=r.get("tools"), tokenize=False,
                                            add_generation_prompt=r.get("add_generation_prompt", False),
                                            chat_template=tpl, **kwargs)
            rows.append({"request": req, "prompt": prompt})
        except Exception as e:  # jinja2 raised: the C++ renderer must raise too
            rows.append({"request": req, "error": type(e).__name__})
            errors += 1
    os.makedirs(os.path.join(DATA, "qwen35"), exist_ok=True)
    with open(os.path.join(DATA, "qwen35", "template_cases.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} requests, {errors} errors")


if __name__ == "__main__":
    main()
