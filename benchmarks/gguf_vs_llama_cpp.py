#!/usr/bin/env python3
"""qnext vs llama.cpp on the same GGUF files, side by side in one run: prefill (pp512) and decode (tg) tokens/s
for each file and thread count, with qnext's decode also as a fraction of the memory roofline (weight bytes
read per token / measured read bandwidth; both printed by `qnext bench`).

    python3 benchmarks/gguf_vs_llama_cpp.py --qnext build/qnext --llama-bench PATH/llama-bench \\
        --threads 1,2 F1.gguf [F2.gguf ...]

llama-bench is llama.cpp's own benchmark, built from the llama-cpp-python 0.3.36 sdist (vendor/llama.cpp:
cmake -DGGML_NATIVE=ON, target llama-bench). The two engines run one after the other, never at once. The
model files are usually a random-weight checkpoint of the real 80B layer shapes (configs/models/), converted
with llama.cpp's convert_hf_to_gguf.py and quantized with llama-quantize, so both read the very same bytes.
Only the standard library.
"""
import argparse
import json
import re
import subprocess
import sys


def run_qnext(qnext, path, threads, prefill, steps):
    out = subprocess.run([qnext, "--quiet", "bench", "--model", path, "--threads", str(threads), "--prefill",
                          str(prefill), "--contexts", "128", "--steps", str(steps)],
                         capture_output=True, text=True, check=True).stdout
    pp = float(re.search(r"prefill \d+ tokens: ([\d.]+) tok/s", out).group(1))
    m = re.search(r"decode at context 128.*?: ([\d.]+) tok/s .*weights ([\d.]+) GB/s vs read bandwidth ([\d.]+) GB/s", out)
    active = float(re.search(r"active weight bytes per token: ([\d.]+) MB", out).group(1))
    return {"pp": pp, "tg": float(m.group(1)), "weights_gbs": float(m.group(2)), "read_gbs": float(m.group(3)),
            "active_mb": active}


def run_llama(bench, path, threads, prefill, steps):
    out = subprocess.run([bench, "-m", path, "-t", str(threads), "-p", str(prefill), "-n", str(steps), "-r", "2",
                          "-o", "json"], capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] == prefill and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] == steps and r["n_prompt"] == 0)
    return {"pp": pp, "tg": tg}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qnext", default="build/qnext")
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    print(f"{'file':28} {'thr':>3} | {'qnext pp':>9} {'llama pp':>9} {'ratio':>6} | {'qnext tg':>9} {'llama tg':>9} "
          f"{'ratio':>6} | {'MB/tok':>7} {'GB/s':>6} {'read':>6} {'roof%':>6}")
    for path in a.files:
        for t in [int(v) for v in a.threads.split(",")]:
            q = run_qnext(a.qnext, path, t, a.prefill, a.steps)
            l = run_llama(a.llama_bench, path, t, a.prefill, a.steps)
            name = path.rsplit("/", 1)[-1]
            print(f"{name:28} {t:>3} | {q['pp']:9.2f} {l['pp']:9.2f} {q['pp'] / l['pp']:6.2f} | {q['tg']:9.2f} "
                  f"{l['tg']:9.2f} {q['tg'] / l['tg']:6.2f} | {q['active_mb']:7.1f} {q['weights_gbs']:6.2f} "
                  f"{q['read_gbs']:6.2f} {100 * q['weights_gbs'] / q['read_gbs']:5.1f}%", flush=True)


if __name__ == "__main__":
    sys.exit(main())
