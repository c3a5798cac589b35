#!/usr/bin/env python3
"""Greedy decoding of the demo GGUF (tests/data/loading/gguf/demo-q8_0.gguf) by qnext and by llama.cpp on the
first user turn of every held-out task (tests/data/demo/heldout_tasks.jsonl, the demo's own chat templates and
tool declarations): the share of generated tokens on which the two engines agree (token by token up to the
first difference, then nothing more counts) and the share of tasks whose continuations are identical.

qnext runs as `qnext generate --ids` (its text is re-tokenized with the demo's tokenizer, which round-trips
the demo's outputs); llama.cpp through llama-cpp-python 0.3.36 (LLAMA_CPP_LIB_PATH may point at a libllama
built from the same sdist).

    python3 tests/reference/gguf_greedy_agreement.py --qnext build/qnext [--max-tokens 48]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/reference/demo_model"))
from gen_data import TOOLS_JSON, load_templates, render  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qnext", default=str(REPO / "build/qnext"))
    ap.add_argument("--gguf", default=str(REPO / "tests/data/loading/gguf/demo-q8_0.gguf"))
    ap.add_argument("--max-tokens", type=int, default=48)
    a = ap.parse_args()
    import llama_cpp
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(REPO / "models/demo/tokenizer.json"))
    eos = tok.token_to_id("<|im_end|>")
    tools = json.loads(pathlib.Path(TOOLS_JSON).read_text())
    templates = load_templates()
    tasks = [json.loads(l) for l in (REPO / "tests/data/demo/heldout_tasks.jsonl").read_text().splitlines()]
    import numpy as np
    llm = llama_cpp.Llama(model_path=a.gguf, n_ctx=2048, n_batch=1024, n_ubatch=1024, logits_all=True, verbose=False,
                          n_threads=2)
    agree = total = same_tasks = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, task in enumerate(tasks):
            prompt = render(templates[task["mode"]], tools, task["messages"][:1], add_generation_prompt=True)
            pids = tok.encode(prompt, add_special_tokens=False).ids
            llm.reset()
            llm.eval(pids)
            ref = []
            while len(ref) < a.max_tokens:
                t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                ref.append(t)
                if t == eos:
                    break
                llm.eval([t])
            path = os.path.join(tmp, "ids.json")
            pathlib.Path(path).write_text(json.dumps(pids))
            out = subprocess.run([a.qnext, "--quiet", "generate", "--model", a.gguf, "--ids", path, "--max-tokens",
                                  str(a.max_tokens)], capture_output=True, text=True, check=True).stdout
            if out.endswith("\n"):
                out = out[:-1]   # generate ends its output with a newline
            got = tok.encode(out, add_special_tokens=False).ids[: len(ref)]
            if ref and ref[-1] == eos and len(got) == len(ref) - 1:
                got.append(eos)   # qnext stops at <|im_end|> without printing it
            n = 0
            while n < min(len(ref), len(got)) and ref[n] == got[n]:
                n += 1
            agree += n
            total += len(ref)
            same_tasks += n == len(ref)
            if (i + 1) % 50 == 0:
                print(f"{i + 1} tasks: {agree}/{total} tokens agree", flush=True)
    print(f"{len(tasks)} held-out tasks, greedy {a.max_tokens} tokens: {agree}/{total} = {100 * agree / total:.2f}% "
          f"of llama.cpp's tokens reproduced (prefix-exact), {same_tasks} tasks identical")


if __name__ == "__main__":
    main()
