#!/usr/bin/env python3
"""A small qwen3next GGUF whose rows are multiples of 256, so llama-quantize's Q4_K_M recipe really produces
K-quants (Q4_K, Q6_K; the demo model's 128-wide rows fall back to Q5_0/Q8_0), and llama.cpp's own logits on it.

  1. a random bf16 checkpoint of tests/data/loading/gguf/kquant-config.json (qnext make-checkpoint, seed 7,
     one MTP layer) with the demo tokenizer;
  2. llama.cpp's convert_hf_to_gguf.py (bf16), then llama-quantize Q4_K_M
     -> tests/data/loading/gguf/kquant-q4_k_m.gguf;
  3. llama.cpp (llama-cpp-python 0.3.36) prefill of 48 fixed token ids, all rows' logits
     -> tests/data/loading/gguf/kquant-q4_k_m.logits.{safetensors,json}.

    python3 tests/reference/make_kquant_golden.py --qnext build/qnext \\
        --llama-cpp /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp --quantize PATH/llama-quantize
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests/data/loading/gguf"
IDS = [(7 + 131 * i) % 3116 for i in range(48)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qnext", default=str(REPO / "build/qnext"))
    ap.add_argument("--llama-cpp", required=True, type=pathlib.Path)
    ap.add_argument("--quantize", required=True)
    a = ap.parse_args()
    out = DATA / "kquant-q4_k_m.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        hf = pathlib.Path(tmp) / "hf"
        subprocess.run([a.qnext, "make-checkpoint", "--config", str(DATA / "kquant-config.json"), "--seed", "7",
                        "--dtype", "bf16", "--mtp", "1", "--out", str(hf)], check=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(REPO / "models/demo" / f, hf / f)
        bf16 = pathlib.Path(tmp) / "bf16.gguf"
        subprocess.run([sys.executable, str(REPO / "tests/reference/convert_demo_gguf.py"), "--llama-cpp",
                        str(a.llama_cpp), "--outtype", "bf16", "--model", str(hf), "--out", str(bf16)], check=True)
        subprocess.run([a.quantize, str(bf16), str(out), "Q4_K_M", "2"], check=True)

    import llama_cpp
    from safetensors.numpy import save_file
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=128, n_batch=128, n_ubatch=128, logits_all=True, n_threads=2,
                          verbose=False, seed=0)
    llm.eval(IDS)
    logits = np.ascontiguousarray(np.asarray(llm.scores[: len(IDS)], dtype=np.float32))
    save_file({"logits": logits}, str(DATA / "kquant-q4_k_m.logits.safetensors"))
    (DATA / "kquant-q4_k_m.logits.json").write_text(
        json.dumps({"llama_cpp_python": llama_cpp.__version__, "gguf": out.name, "ids": IDS}) + "\n")
    print(out, out.stat().st_size, "bytes; logits", logits.shape)


if __name__ == "__main__":
    main()
