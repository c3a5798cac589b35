#!/usr/bin/env python3
"""xgrammar side of `qnext bench constrain` (pinned: xgrammar==0.2.8, transformers, see requirements.txt).

Replays the exact token sequences that qnext sampled (--sequences, jsonl {"name", "schema", "tokens"}) through
xgrammar on the same tokenizer and schemas, timing compile (single thread, cache off) and every
fill_next_token_bitmask call; also compiles the 20-tool Qwen3 structural tag. Prints one JSON object.
xgrammar is configured like qnext's layout: any_whitespace=False, separators (", ", ": "), strict_mode.
Mask times include the Python->C++ call overhead (~1 us)."""
import argparse, json, time

import xgrammar as xgr
from transformers import AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--sequences", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    vocab_size = len(tok)
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size, stop_token_ids=stops)

    def compiler():
        return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)

    seqs = [json.loads(l) for l in open(a.sequences)]
    compile_ms, mask_us, rejected, checked = {}, [], 0, 0
    bitmask = xgr.allocate_token_bitmask(1, vocab_size)
    grammars = {}
    for s in seqs:
        if s["name"] not in grammars:
            t0 = time.perf_counter()
            grammars[s["name"]] = compiler().compile_json_schema(json.dumps(s["schema"]), any_whitespace=False,
                                                                 separators=(", ", ": "), strict_mode=True)
            compile_ms[s["name"]] = (time.perf_counter() - t0) * 1e3
        m = xgr.GrammarMatcher(grammars[s["name"]])
        for t in s["tokens"]:
            t0 = time.perf_counter_ns()
            m.fill_next_token_bitmask(bitmask)
            mask_us.append((time.perf_counter_ns() - t0) / 1e3)
            checked += 1
            if not m.accept_token(t):
                rejected += 1
                break
    tools = json.load(open(a.tools))
    tool_ms = []
    for _ in range(a.repeats):
        tag = xgr.get_builtin_structural_tag("qwen_3", tools=tools, tool_choice="auto", reasoning=False)
        t0 = time.perf_counter()
        compiler().compile_structural_tag(tag)
        tool_ms.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"compile_ms": compile_ms, "mask_us": mask_us, "rejected_sequences": rejected,
                      "tokens_checked": checked, "tool20_compile_ms": sorted(tool_ms)[len(tool_ms) // 2]}))


if __name__ == "__main__":
    main()
