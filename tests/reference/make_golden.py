#!/usr/bin/env python3
"""Golden data for the C++ Qwen3-Next forward pass, produced by HF transformers (the reference peer).

Pinned peers: see tests/reference/requirements.txt (torch 2.15.0, transformers 5.23.0, safetensors 0.8.0).
CI never runs this script; it writes small committed fixtures under tests/data/model/:

  <name>/config.json, <name>/model.safetensors    tiny random Qwen3NextForCausalLM (save_pretrained, float32)
  <name>/golden.bin + <name>/golden.json          named little-endian float32 arrays + manifest
  tiny_a_bf16/                                     the same weights as tiny_a stored as bf16

Recorded per config, for a fixed prompt (HF run in float32, torch fallback kernels, no fla):
  logits            [T, V]        full-sequence forward
  hidden.<l>        [T, H]        residual stream after decoder layer l (hidden.-1 = embeddings);
                                  hidden.final = after model.norm
  conv.<l>          [C, K]        GDN conv window after the prompt (HF keeps K columns, oldest first)
  recurrent.<l>     [Hv, Dk, Dv]  GDN fp32 recurrent state after the prompt
  key.<l>/value.<l> [Hkv, T, D]   attention KV cache after the prompt (keys after k_norm + RoPE)
  greedy            64 ids        HF generate(do_sample=False, max_new_tokens=64), eos disabled
  split_logits      [T, V]        logits of the prompt fed as two pieces over a cache (checks HF's
                                  multi-token cached forward; the manifest says whether it matched)
For tiny_a_bf16 the golden holds `logits` of an fp32 forward of the bf16-rounded weights.

Usage: python3 tests/reference/make_golden.py [--out tests/data/model]
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

assert torch.__version__.startswith("2.15"), torch.__version__
assert transformers.__version__ == "5.23.0", transformers.__version__

GREEDY_TOKENS = 64

# Three configs that differ in every axis the issue names (see the comment on each line).
CONFIGS = {
    "tiny_a": dict(  # GDN k:v heads 1:2, GQA 2, interval 4 (3 GDN + 1 attn), top-2 normalised, hidden 72
        vocab_size=512, hidden_size=72, num_hidden_layers=4, full_attention_interval=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, partial_rotary_factor=0.25,
        linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=24,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, moe_intermediate_size=40,
        shared_expert_intermediate_size=56, max_position_embeddings=256, rope_theta=10000.0,
        prompt_len=24, seed=11),
    "tiny_b": dict(  # GDN 1:1, GQA 4, interval 2, top-3 NOT normalised, partial rotary 0.5
        vocab_size=384, hidden_size=64, num_hidden_layers=4, full_attention_interval=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, partial_rotary_factor=0.5,
        linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=32, linear_value_head_dim=32,
        num_experts=6, num_experts_per_tok=3, norm_topk_prob=False, moe_intermediate_size=32,
        shared_expert_intermediate_size=24, max_position_embeddings=512, rope_theta=1000000.0,
        prompt_len=20, seed=22),
    "tiny_c": dict(  # GDN 1:2 with 4 key heads, MHA (GQA 1), interval 3, top-1, full rotary, 80 tokens > chunk 64
        vocab_size=1024, hidden_size=48, num_hidden_layers=6, full_attention_interval=3,
        num_attention_heads=2, num_key_value_heads=2, head_dim=24, partial_rotary_factor=1.0,
        linear_num_key_heads=4, linear_num_value_heads=8, linear_key_head_dim=8, linear_value_head_dim=12,
        num_experts=4, num_experts_per_tok=1, norm_topk_prob=True, moe_intermediate_size=24,
        shared_expert_intermediate_size=32, max_position_embeddings=1024, rope_theta=10000000.0,
        prompt_len=80, seed=33),
}


def make_model(spec):
    spec = dict(spec)
    prompt_len, seed = spec.pop("prompt_len"), spec.pop("seed")
    cfg = Qwen3NextConfig(**spec, rms_norm_eps=1e-6, tie_word_embeddings=False, eos_token_id=None,
                          bos_token_id=None, pad_token_id=None, dtype="float32")
    torch.manual_seed(seed)
    model = Qwen3NextForCausalLM(cfg).eval().float()
    reinit(model, seed)
    return model, prompt_len, seed


def reinit(model, seed):
    """Replace HF's tiny-std init with O(1)-scale weights so every layer visibly changes the residual
    stream and a wrong op cannot hide under the 1e-4 tolerance."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.empty(p.shape).uniform_(0.3, 3.0, generator=g).log())
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("linear_attn.norm.weight"):       # plain-weight gated norm, ~1
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "norm" in name:                                  # zero-centred (1 + w) norms, ~0
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("conv1d.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):                # router: spread logits widely
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p.shape[-1] ** 0.5))
            else:                                                 # projections ~ 1/sqrt(fan_in)
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


class Recorder:
    def __init__(self):
        self.arrays = {}

    def add(self, name, t):
        self.arrays[name] = t.detach().to(torch.float32).contiguous().numpy()

    def write(self, folder, meta):
        offset, index = 0, {}
        with open(os.path.join(folder, "golden.bin"), "wb") as f:
            for name, a in self.arrays.items():
                data = a.astype("<f4").tobytes()
                index[name] = {"offset": offset, "shape": list(a.shape)}
                f.write(data)
                offset += len(data)
        meta["tensors"] = index
        with open(os.path.join(folder, "golden.json"), "w") as f:
            json.dump(meta, f, indent=1)


@torch.no_grad()
def record(model, ids, rec):
    cfg = model.config
    hooks = []
    for l, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(
            lambda m, inp, out, l=l: rec.add(f"hidden.{l}", (out[0] if isinstance(out, tuple) else out)[0])))
    hooks.append(model.model.embed_tokens.register_forward_hook(lambda m, inp, out: rec.add("hidden.-1", out[0])))
    hooks.append(model.model.norm.register_forward_hook(lambda m, inp, out: rec.add("hidden.final", out[0])))
    out = model(input_ids=ids, use_cache=True)
    for h in hooks:
        h.remove()
    rec.add("logits", out.logits[0])
    cache = out.past_key_values
    for l in range(cfg.num_hidden_layers):
        layer = cache.layers[l]
        if cfg.layer_types[l] == "linear_attention":
            rec.add(f"conv.{l}", layer.conv_states[0][0])          # [C, K]
            rec.add(f"recurrent.{l}", layer.recurrent_states[0][0])  # [Hv, Dk, Dv]
        else:
            rec.add(f"key.{l}", layer.keys[0])                      # [Hkv, T, D]
            rec.add(f"value.{l}", layer.values[0])
    return out.logits[0]


@torch.no_grad()
def split_forward(model, ids, cut):
    """Prompt in two pieces over one cache: the multi-token cached path HF got wrong before 2026-04."""
    first = model(input_ids=ids[:, :cut], use_cache=True)
    second = model(input_ids=ids[:, cut:], past_key_values=first.past_key_values, use_cache=True)
    return torch.cat([first.logits[0], second.logits[0]], dim=0)


@torch.no_grad()
def greedy(model, ids):
    gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=GREEDY_TOKENS,
                         do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True)
    new = gen[0, ids.shape[1]:]
    assert new.numel() == GREEDY_TOKENS
    # Smallest top-1 / top-2 logit gap along the greedy path: a large gap means a tie cannot flip a token.
    full = model(input_ids=gen[:, :-1]).logits[0, ids.shape[1] - 1:]
    top2 = torch.topk(full, 2, dim=-1).values
    assert torch.equal(full.argmax(-1), new), "generate() disagrees with a full forward"
    return new.tolist(), float((top2[:, 0] - top2[:, 1]).min())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "model"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    summary = {}
    for name, spec in CONFIGS.items():
        model, prompt_len, seed = make_model(spec)
        folder = os.path.join(args.out, name)
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, safe_serialization=True)
        ids = torch.randint(0, model.config.vocab_size, (1, prompt_len),
                            generator=torch.Generator().manual_seed(seed + 7))
        rec = Recorder()
        logits = record(model, ids, rec)
        cut = prompt_len // 2 + 3
        split = split_forward(model, ids, cut)
        split_err = float((split - logits).norm() / logits.norm())
        rec.add("split_logits", split)
        tokens, gap = greedy(model, ids)
        meta = {"config": name, "prompt": ids[0].tolist(), "greedy": tokens, "greedy_min_top2_gap": gap,
                "split_cut": cut, "split_rel_l2_vs_full": split_err,
                "hf_multi_token_cached_forward_ok": split_err < 1e-5,
                "torch": torch.__version__, "transformers": transformers.__version__}
        rec.write(folder, meta)
        summary[name] = {"greedy_min_top2_gap": gap, "split_rel_l2": split_err}

        if name == "tiny_a":  # bf16 copy of the same weights + an fp32 forward of the rounded weights
            bf_folder = os.path.join(args.out, "tiny_a_bf16")
            shutil.rmtree(bf_folder, ignore_errors=True)
            model.to(torch.bfloat16).save_pretrained(bf_folder, safe_serialization=True)
            model.float()
            brec = Recorder()
            brec.add("logits", model(input_ids=ids).logits[0])
            brec.write(bf_folder, {"config": "tiny_a_bf16", "prompt": ids[0].tolist(),
                                   "note": "fp32 forward of the bf16-rounded tiny_a weights"})
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
