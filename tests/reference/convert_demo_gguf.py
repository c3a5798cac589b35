#!/usr/bin/env python3
"""Converts the demo model (models/demo) to GGUF with llama.cpp's own converter (convert_hf_to_gguf.py, vendored
by the llama-cpp-python sdist), so that qnext's GGUF loader is tested on exactly what llama.cpp writes.

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/lcp && tar xzf ... -C /tmp/lcp
    python3 tests/reference/convert_demo_gguf.py --llama-cpp /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        --outtype q8_0 --out tests/data/loading/gguf/demo-q8_0.gguf

The converter recognises a BPE pre-tokenizer by hashing how it splits a test text, and it knows only published
vocabularies; the demo tokenizer is a 3,116-token BPE trained here with the Qwen2 pre-tokenizer (tokenizer.json:
the same Split regex and ByteLevel), so its hash is new. This script answers "qwen2" for it and changes nothing
else in the conversion.
"""
import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=pathlib.Path, help="llama.cpp source tree (vendored)")
    ap.add_argument("--outtype", default="q8_0")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--model", default=REPO / "models" / "demo", type=pathlib.Path)
    a = ap.parse_args()
    sys.path.insert(0, str(a.llama_cpp / "gguf-py"))
    sys.path.insert(0, str(a.llama_cpp))
    from conversion import base  # noqa: E402  (llama.cpp's converter package)

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    import convert_hf_to_gguf  # noqa: E402

    sys.argv = ["convert_hf_to_gguf.py", str(a.model), "--outtype", a.outtype, "--outfile", str(a.out)]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main()
