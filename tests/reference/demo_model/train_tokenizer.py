"""Trains the demo model's byte-level BPE tokenizer on the generated corpus.

Same normalizer (NFC), pre-tokenizer (Qwen2 split regex + ByteLevel), post-processor and decoder as Qwen3
(structure copied from Qwen's tokenizer.json), and Qwen's added tokens with the same strings and special flags,
placed after the BPE vocabulary in Qwen's order. Writes tokenizer.json + tokenizer_config.json (chat_template =
the official Qwen3-Next Instruct template, verbatim) into --out.

  python3 train_tokenizer.py --data build-demo/data --out models/demo [--vocab 6000]
"""
import argparse
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")
# (content, special) in Qwen3's id order (151643..151668)
ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
         ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
         ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
         ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
         ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
         ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
         ("<think>", False), ("</think>", False)]


def corpus(data_dir):
    with open(os.path.join(data_dir, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            for tok, _ in ADDED:  # added tokens are matched before BPE; keep them out of the merges
                text = text.replace(tok, "\n")
            yield text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=6000, help="total size including the added tokens")
    args = ap.parse_args()

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=args.vocab - len(ADDED), min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(corpus(args.data), trainer=trainer)
    n_bpe = tok.get_vocab_size()
    tok.add_tokens([AddedToken(c, special=s, normalized=False, single_word=False, lstrip=False, rstrip=False)
                    for c, s in ADDED])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "tokenizer.json")
    tok.save(path)
    # make the JSON match Qwen's exactly in structure (the Rust side writes the same keys)
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    for a in tj["added_tokens"]:
        assert a["content"] == ADDED[a["id"] - n_bpe][0] and a["special"] == ADDED[a["id"] - n_bpe][1]

    with open(os.path.join(HERE, "templates", "qwen3-next-instruct.jinja"), encoding="utf-8") as f:
        template = f.read()
    cfg = {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": {str(n_bpe + i): {"content": c, "lstrip": False, "normalized": False,
                                                   "rstrip": False, "single_word": False, "special": s}
                                 for i, (c, s) in enumerate(ADDED)},
        "additional_special_tokens": [c for c, s in ADDED if s and c != "<|endoftext|>"],
        "bos_token": None, "chat_template": template, "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 4096, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    # the Thinking variant of the official template, for `--template thinking` style use
    with open(os.path.join(HERE, "templates", "qwen3-next-thinking.jinja"), encoding="utf-8") as f:
        thinking = f.read()
    with open(os.path.join(args.out, "chat_template_thinking.jinja"), "w", encoding="utf-8") as f:
        f.write(thinking)
    print(f"bpe {n_bpe} + added {len(ADDED)} = {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
