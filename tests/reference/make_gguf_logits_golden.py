#!/usr/bin/env python3
"""Golden logits of llama.cpp itself on the demo GGUF (tests/data/loading/gguf/demo-q8_0.gguf), so that qnext's
GGUF forward is held against the engine that defines the format, on the very same file.

For the two held-out transcripts of tests/data/demo/golden_hf.json (their token ids) it runs llama.cpp's full
prefill (one batch, every row's logits kept) and stores, in one safetensors file (f32):
  <name>.logits   f32 [N, V]   llama.cpp's logits at `positions` (the positions golden_hf.json keeps)
and in the .json next to it: the llama-cpp-python version, per transcript `ids`, `positions`, and
`greedy_ids`: llama.cpp's greedy continuation (<= 32 tokens, stops after <|im_end|>) of `prompt_ids`.

Needs llama-cpp-python 0.3.36 (tests/reference/requirements.txt). Its pip build compiles llama.cpp; to reuse
a libllama built from the same sdist: CMAKE_ARGS=-DLLAMA_BUILD=OFF pip install . and LLAMA_CPP_LIB_PATH=<dir>.

    python3 tests/reference/make_gguf_logits_golden.py   # writes tests/data/demo/golden_llama_cpp.*
"""
import json
import pathlib

import numpy as np
import llama_cpp
from safetensors.numpy import save_file

REPO = pathlib.Path(__file__).resolve().parents[2]
GGUF = REPO / "tests/data/loading/gguf/demo-q8_0.gguf"
HF = REPO / "tests/data/demo/golden_hf.json"
OUT = REPO / "tests/data/demo/golden_llama_cpp"


def main():
    hf = json.loads(HF.read_text())
    n_ctx = max(len(m["ids"]) for m in hf.values()) + 64
    llm = llama_cpp.Llama(model_path=str(GGUF), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                          n_threads=2, verbose=False, seed=0)
    eos = 3118  # <|im_end|>
    tensors, meta = {}, {"llama_cpp_python": llama_cpp.__version__, "gguf": GGUF.name, "transcripts": {}}
    for name, m in hf.items():
        ids = m["ids"]
        llm.reset()
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
        pos = m["positions"]
        tensors[f"{name}.logits"] = np.ascontiguousarray(scores[pos])
        llm.reset()
        prompt = m["prompt_ids"]
        llm.eval(prompt)
        greedy = []
        while len(greedy) < 32:
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            greedy.append(tok)
            if tok == eos:
                break
            llm.eval([tok])
        meta["transcripts"][name] = {"ids": ids, "positions": pos, "prompt_ids": prompt, "greedy_ids": greedy}
        print(name, len(ids), "tokens; greedy", len(greedy), "tokens; HF greedy equal:", greedy == m["greedy_ids"])
    save_file(tensors, str(OUT) + ".safetensors")
    pathlib.Path(str(OUT) + ".json").write_text(json.dumps(meta) + "\n")


if __name__ == "__main__":
    main()
