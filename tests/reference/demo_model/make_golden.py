"""Golden data for the C++ forward pass on the demo model, from HF transformers (pinned, see requirements.txt).

For two held-out transcripts (one Instruct, one Thinking) it stores, in one safetensors file (f32 only, so the
product's own safetensors reader loads it):
  <name>.logits       f32   [N, V]   HF logits at `positions`: fp32 forward of the bf16 weights, full prefill
  <name>.mtp_logits   f32   [N, V]   MTP head logits there (input: hidden(p) after model.norm, token p+1;
                                     predicts token p+2; rows with p+1 >= T are zero)
and in the .json next to it, per name:
  ids          the tokenized transcript (starts with the shared tool-declaration prefix)
  positions    where logits are kept (every 40th, plus the last 12)
  prompt_ids   the transcript's first user turn + generation prompt
  greedy_ids   HF greedy continuation (generate, do_sample=False, <= 32 tokens), stops after <|im_end|>

  python3 make_golden.py --model models/demo --tasks tests/data/demo/heldout_tasks.jsonl \
      --out tests/data/demo/golden_hf.safetensors
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model as dm  # noqa: E402
from gen_data import TOOLS_JSON, load_templates, render  # noqa: E402


def pick(tasks):
    inst = next(t for t in tasks if t["mode"] == "instruct" and t["family"] == "two_step")
    think = next(t for t in tasks if t["mode"] == "thinking" and t["family"] == "parallel")
    return [("instruct", inst), ("thinking", think)]


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    model, mtp = dm.load_folder(args.model, torch.float32)
    eos = tok.token_to_id("<|im_end|>")
    with open(TOOLS_JSON, encoding="utf-8") as f:
        tools = json.load(f)
    templates = load_templates()
    with open(args.tasks, encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f]
    out, meta = {}, {}
    for name, task in pick(tasks):
        text = render(templates[task["mode"]], tools, task["messages"])
        ids = tok.encode(text, add_special_tokens=False).ids
        t = len(ids)
        x = torch.tensor([ids])
        h = model.model(input_ids=x).last_hidden_state
        logits = model.lm_head(h)[0]
        m = mtp(model, h[:, :-1], x[:, 1:], torch.arange(t - 1).unsqueeze(0), None)
        mlogits = torch.cat([model.lm_head(m)[0], torch.zeros(1, logits.shape[-1])], 0)
        pos = sorted(set(range(0, t, 40)) | set(range(t - 12, t)))
        prompt = render(templates[task["mode"]], tools, task["messages"][:1], add_generation_prompt=True)
        pids = tok.encode(prompt, add_special_tokens=False).ids
        g = model.generate(torch.tensor([pids]), do_sample=False, max_new_tokens=32, eos_token_id=eos,
                           pad_token_id=tok.token_to_id("<|endoftext|>"))[0, len(pids):]
        out[f"{name}.logits"] = logits[pos].float().contiguous()
        out[f"{name}.mtp_logits"] = mlogits[pos].float().contiguous()
        meta[name] = {"task": task["id"], "tokens": t, "greedy_text": tok.decode(g.tolist(), skip_special_tokens=False),
                      "ids": ids, "positions": pos, "prompt_ids": pids, "greedy_ids": g.tolist()}
        print(name, {k: v for k, v in meta[name].items() if not k.endswith("ids")}, flush=True)
    import tokenizers
    import transformers
    save_file(out, args.out, metadata={"transformers": transformers.__version__, "torch": torch.__version__,
                                       "tokenizers": tokenizers.__version__, "note": "fp32 forward of bf16 weights"})
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
