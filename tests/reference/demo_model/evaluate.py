"""Held-out behaviour and MTP acceptance of an exported demo model (HF transformers as the engine).

Behaviour: each held-out task runs as an agent loop with greedy decoding; tool calls are parsed from
<tool_call> blocks and really executed (demo_tools.run_tool) in a fresh workspace holding the task's setup files.
A task succeeds when the tools called match the expected ones (same multiset, or no call for no-tool tasks),
the final answer contains every expected substring, and the expected files have the expected contents.

MTP: on the model's own greedy turns, the MTP head drafts k = 1, 2, 3 tokens from every position (chained as in
vLLM: step j+1 takes step j's post-norm output and drafted token); a draft of k tokens is accepted when all k
equal the tokens the main model generated greedily.

  python3 evaluate.py --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl --per-family 10 \
      --out build-demo/eval.json
"""
import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import time

import torch
from tokenizers import Tokenizer
from transformers.cache_utils import DynamicCache

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model as dm  # noqa: E402
from demo_tools import run_tool  # noqa: E402
from gen_data import TOOLS_JSON, load_templates, render  # noqa: E402

CALL_RE = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)


class Engine:
    def __init__(self, model_dir, max_new):
        self.tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.model, self.mtp = dm.load_folder(model_dir)
        self.eos = self.tok.token_to_id("<|im_end|>")
        self.max_new = max_new
        with open(TOOLS_JSON, encoding="utf-8") as f:
            self.tools = json.load(f)
        self.templates = load_templates()
        prefix = render(self.templates["instruct"], self.tools, [{"role": "user", "content": "x"}])
        prefix = prefix[: prefix.index("<|im_end|>\n") + len("<|im_end|>\n")]
        self.prefix_ids = self.tok.encode(prefix, add_special_tokens=False).ids
        self.cache0 = DynamicCache(config=self.model.config)
        with torch.no_grad():
            self.model(input_ids=torch.tensor([self.prefix_ids]), past_key_values=self.cache0, use_cache=True,
                       logits_to_keep=1)

    @torch.no_grad()
    def generate(self, prompt_ids):
        """Greedy continuation of prompt_ids (which start with the shared prefix) until <|im_end|>."""
        p = len(self.prefix_ids)
        assert prompt_ids[:p] == self.prefix_ids
        cache = copy.deepcopy(self.cache0)
        out = self.model(input_ids=torch.tensor([prompt_ids[p:]]), past_key_values=cache, use_cache=True,
                         logits_to_keep=1)
        gen = []
        while len(gen) < self.max_new:
            nxt = int(out.logits[0, -1].argmax())
            gen.append(nxt)
            if nxt == self.eos:
                break
            out = self.model(input_ids=torch.tensor([[nxt]]), past_key_values=cache, use_cache=True)
        return gen


def parse_turn(text, thinking):
    """-> (message dict, [(name, args)] or None if a call block is malformed)."""
    body = text[: -len("<|im_end|>")] if text.endswith("<|im_end|>") else text
    msg = {"role": "assistant"}
    if thinking and "</think>" in body:
        reasoning, body = body.split("</think>", 1)
        msg["reasoning_content"] = reasoning.strip("\n")
        body = body.lstrip("\n")
    calls = []
    for raw in CALL_RE.findall(body):
        try:
            c = json.loads(raw)
            calls.append((c["name"], c["arguments"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            return msg, None
    first = body.find("<tool_call>")
    msg["content"] = (body[:first] if first >= 0 else body).rstrip("\n")
    if calls:
        msg["tool_calls"] = [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]
    return msg, calls


def run_task(engine, task, max_turns=4):
    thinking = task["mode"] == "thinking"
    template = engine.templates[task["mode"]]
    ws = tempfile.mkdtemp(prefix="qnext-demo-eval-")
    turns = []  # (prompt_ids, generated ids) for the MTP measurement
    try:
        for path, text in task["setup_files"].items():
            os.makedirs(os.path.dirname(os.path.join(ws, path)), exist_ok=True)
            with open(os.path.join(ws, path), "w", encoding="utf-8") as f:
                f.write(text)
        messages = [{"role": "user", "content": task["user"]}]
        called, final, error = [], None, None
        for _ in range(max_turns):
            prompt = render(template, engine.tools, messages, add_generation_prompt=True)
            ids = engine.tok.encode(prompt, add_special_tokens=False).ids
            gen = engine.generate(ids)
            turns.append((ids, gen))
            text = engine.tok.decode(gen, skip_special_tokens=False)
            msg, calls = parse_turn(text, thinking)
            messages.append(msg)
            if calls is None:
                error = "malformed tool call"
                break
            if not calls:
                final = msg["content"]
                break
            for name, args in calls:
                called.append(name)
                messages.append({"role": "tool", "name": name,
                                 "content": run_tool(ws, name, args) if isinstance(args, dict) else "error: bad arguments"})
        files_ok = True
        for path, want in task["expect"]["files"].items():
            full = os.path.join(ws, path)
            files_ok &= os.path.isfile(full) and open(full, encoding="utf-8").read() == want
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    exp = task["expect"]
    tools_ok = sorted(called) == sorted(exp["tools"])
    answer_ok = final is not None and all(s in final for s in exp["answer_contains"])
    ok = tools_ok and answer_ok and files_ok and error is None
    return {"id": task["id"], "family": task["family"], "ok": ok, "tools_ok": tools_ok, "answer_ok": answer_ok,
            "files_ok": files_ok, "error": error, "called": called, "final": final}, turns


@torch.no_grad()
def mtp_acceptance(engine, turns, kmax=3):
    """Counts [positions, accepted] per k over generated tokens of the given turns."""
    model, mtp = engine.model, engine.mtp
    stats = {k: [0, 0] for k in range(1, kmax + 1)}
    for prompt, gen in turns:
        ids = prompt + gen
        g0 = len(prompt)  # ids[g0:] were generated greedily by the main model
        h = model.model(input_ids=torch.tensor([ids])).last_hidden_state
        cache = DynamicCache(config=mtp.cfg)
        # MTP prefill over positions 0..g0-2 (true inputs), then step through the generated region
        mtp(model, h[:, : g0 - 1], torch.tensor([ids[1:g0]]), torch.arange(0, g0 - 1).unsqueeze(0), cache)
        for t in range(g0 - 1, len(ids) - 2):
            # step 1 at position t: hidden(t) + token t+1 (a cache entry with true inputs, kept)
            m = mtp(model, h[:, t:t + 1], torch.tensor([[ids[t + 1]]]), torch.tensor([[t]]), cache)
            d = [int(model.lm_head(m)[0, -1].argmax())]
            layer = cache.layers[0]
            keep = layer.keys.shape[-2]
            for j in range(1, kmax):  # chained drafts; their cache entries are dropped afterwards
                m = mtp(model, m, torch.tensor([[d[-1]]]), torch.tensor([[t + j]]), cache)
                d.append(int(model.lm_head(m)[0, -1].argmax()))
            layer.keys, layer.values = layer.keys[..., :keep, :], layer.values[..., :keep, :]
            for k in range(1, kmax + 1):
                if t + 1 + k < len(ids):  # the k tokens the drafts are checked against exist
                    stats[k][0] += 1
                    stats[k][1] += all(d[j] == ids[t + 2 + j] for j in range(k))
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--per-family", type=int, default=0, help="only the first N tasks of each family (0: all)")
    ap.add_argument("--mtp-tasks", type=int, default=14, help="tasks whose turns feed the MTP measurement")
    ap.add_argument("--max-new", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shard", type=int, default=0, help="run tasks[shard::shards] (parallel processes)")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--merge", nargs="*", help="only merge these shard outputs into --out")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    torch.set_num_threads(args.threads)
    engine = Engine(args.model, args.max_new)
    with open(args.tasks, encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f]
    if args.per_family:
        seen = {}
        tasks = [t for t in tasks if seen.setdefault(t["family"], []).append(t) or
                 len(seen[t["family"]]) <= args.per_family]
    tasks = tasks[args.shard::args.shards]
    results, all_turns = [], []
    t0 = time.time()
    for i, task in enumerate(tasks):
        r, turns = run_task(engine, task)
        results.append(r)
        if args.shard == 0 and i < args.mtp_tasks:
            all_turns += turns
        print(json.dumps(r, ensure_ascii=False), flush=True)
    summary = summarize(results)
    summary["behaviour_seconds"] = round(time.time() - t0, 1)
    if all_turns:
        st = mtp_acceptance(engine, all_turns)
        summary["mtp_counts"] = {f"k{k}": v for k, v in st.items()}
    print(json.dumps(summary, indent=1), flush=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "results": results}, f, indent=1, ensure_ascii=False)


def summarize(results, mtp_counts=None):
    fam = {}
    for r in results:
        f = fam.setdefault(r["family"], [0, 0])
        f[0] += 1
        f[1] += r["ok"]
    summary = {"tasks": len(results), "success": round(sum(r["ok"] for r in results) / len(results), 4),
               "per_family": {k: {"tasks": v[0], "success": round(v[1] / v[0], 3)} for k, v in sorted(fam.items())}}
    if mtp_counts:
        summary["mtp_acceptance"] = {k: {"positions": n, "rate": round(a / max(n, 1), 4)}
                                     for k, (n, a) in sorted(mtp_counts.items())}
    return summary


def merge(paths, out):
    results, counts = [], {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            d = json.load(f)
        results += d["results"]
        for k, (n, a) in d["summary"].get("mtp_counts", {}).items():
            c = counts.setdefault(k, [0, 0])
            c[0] += n
            c[1] += a
    summary = summarize(results, counts)
    print(json.dumps(summary, indent=1))
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "results": sorted(results, key=lambda r: r["id"])}, f, indent=1,
                  ensure_ascii=False)


if __name__ == "__main__":
    main()
