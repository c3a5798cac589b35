#!/usr/bin/env python3
"""Encode throughput, single thread: `qnext bench tokenize` vs HF tokenizers (Rust), same corpus, same run.

Usage: python3 tests/reference/bench_tokenizers.py --qnext build/qnext [--tokenizer tests/data/text]
                                                   [--corpus FILE] [--mb 10] [--repeat 3]
The default corpus (~10 MB, written to /tmp) mixes Python standard-library source (code), English
documentation text from /usr/share (licenses, docs) and multilingual text (CJK, Arabic, Hindi, Thai,
Cyrillic, emoji; from tests/reference/text_corpus.py, shuffled). HF runs with TOKENIZERS_PARALLELISM
off and uses its fastest batch API (encode_batch_fast when available); both sides encode line by line
and report the best of `repeat` passes. Token counts are compared as a sanity check.
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import sysconfig
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import text_corpus  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read_some(paths, limit):
    out, total = [], 0
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                s = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        out.append(s)
        total += len(s.encode())
        if total >= limit:
            break
    return "".join(out)


def build_corpus(path, mb):
    rng = random.Random(7)
    target = int(mb * 1e6)
    stdlib = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    rng.shuffle(stdlib)
    code = read_some(stdlib, int(target * 0.6))
    docs = sorted(glob.glob("/usr/share/common-licenses/*") + glob.glob("/usr/share/doc/*/copyright"))
    english = read_some(docs, int(target * 0.25))
    world = []
    size = 0
    pool = text_corpus.WORLD + text_corpus.EMOJI + text_corpus.PROSE + text_corpus.DIGITS
    while size < target * 0.15:
        line = " ".join(rng.choice(pool) for _ in range(rng.randint(3, 12))) + "\n"
        world.append(line)
        size += len(line.encode())
    text = code + english + "".join(world)
    lines = text.splitlines(keepends=True)
    rng.shuffle(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines))


def bench_hf(tok_dir, corpus, repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    load_ms = (time.perf_counter() - t0) * 1e3
    load_cpu_ms = (time.process_time() - c0) * 1e3
    with open(corpus, "rb") as f:
        raw = f.read()
    lines = [l.decode() + "\n" for l in raw.split(b"\n")[:-1]] if raw.endswith(b"\n") else None
    if lines is None:
        lines = [l.decode() + "\n" for l in raw.split(b"\n")]
    nbytes = sum(len(l.encode()) for l in lines)
    fn = getattr(tok, "encode_batch_fast", tok.encode_batch)
    best, best_cpu, tokens = 1e30, 1e30, 0
    for _ in range(repeat):
        t1, c1 = time.perf_counter(), time.process_time()
        encs = fn(lines, add_special_tokens=False)
        best = min(best, time.perf_counter() - t1)
        best_cpu = min(best_cpu, time.process_time() - c1)
        tokens = sum(len(e.ids) for e in encs)
    return {"load_ms": load_ms, "load_cpu_ms": load_cpu_ms, "bytes": nbytes, "tokens": tokens, "encode_s": best,
            "encode_cpu_s": best_cpu, "mb_per_s": nbytes / 1e6 / best, "mb_per_cpu_s": nbytes / 1e6 / best_cpu,
            "api": fn.__name__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qnext", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "tests", "data", "text"))
    ap.add_argument("--corpus", default="/tmp/qnext_tokenizer_bench_corpus.txt")
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not os.path.exists(args.corpus):
        build_corpus(args.corpus, args.mb)
    q = json.loads(subprocess.run([args.qnext, "bench", "tokenize", "--tokenizer", args.tokenizer, "--input", args.corpus,
                                   "--repeat", str(args.repeat)], check=True, capture_output=True, text=True).stdout)
    h = bench_hf(args.tokenizer, args.corpus, args.repeat)
    print(f"corpus: {args.corpus} ({q['bytes'] / 1e6:.2f} MB, {q['lines']} lines)")
    print(f"{'':10s} {'load ms':>9s} {'load cpu':>9s} {'tokens':>10s} {'encode s':>9s} {'cpu s':>7s} {'MB/s':>7s} "
          f"{'MB/cpu-s':>9s}")
    for name, r in (("qnext", q), ("hf " + h["api"][-4:], h)):
        print(f"{name:10s} {r['load_ms']:9.1f} {r['load_cpu_ms']:9.1f} {r['tokens']:10d} {r['encode_s']:9.3f} "
              f"{r['encode_cpu_s']:7.3f} {r['mb_per_s']:7.2f} {r['mb_per_cpu_s']:9.2f}")
    print(f"ratio qnext/hf encode throughput: wall {q['mb_per_s'] / h['mb_per_s']:.2f}x, "
          f"cpu time {q['mb_per_cpu_s'] / h['mb_per_cpu_s']:.2f}x")
    if q["tokens"] != h["tokens"]:
        print(f"WARNING: token counts differ ({q['tokens']} vs {h['tokens']})")
        sys.exit(1)


if __name__ == "__main__":
    main()
