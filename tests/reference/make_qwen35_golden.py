#!/usr/bin/env python3
"""Golden data for the Qwen3.5 / Qwen3.6 family (qwen3_5 dense, qwen3_5_moe) and for the Qwen3-Next config
fields that differ from the first fixtures (rms_norm_eps != 1e-6, dense mlp_only layers, decoder_sparse_step,
odd rotary fraction, conv kernel != 4), produced by HF transformers (the reference peer).

Pinned peers: tests/reference/requirements.txt (torch 2.15.0, transformers 5.23.0, safetensors 0.8.0).
CI never runs this script; it writes small committed fixtures under tests/data/model/, in the same format as
make_golden.py (whose recording functions it reuses): config.json + model.safetensors as HF's save_pretrained
writes them, golden.bin/golden.json with logits, per-layer hidden states, GDN/attention states, 64 greedy ids.

The folders also exercise the on-disk layouts real Qwen3.5 releases use, each built from the same weights the
golden was computed with:
  q35_dense_a   Qwen3_5ForCausalLM, tied embeddings, + MTP tensors (mtp.*, dense MLP) that HF does not run
  q35_dense_b   the multimodal wrapper: Qwen3_5ForConditionalGeneration config (text_config), weights under
                model.language_model.*, a (tiny, fake) vision tower under model.visual.* that is not run
  q35_moe_a     Qwen3_5MoeForCausalLM, experts per expert (what save_pretrained writes)
  q35_moe_b     fused experts as the real checkpoints ship them (mlp.experts.gate_up_proj [E, 2I, H],
                mlp.experts.down_proj [E, H, I]), tied embeddings, + an MTP layer with MoE; the script checks
                that HF loads the fused file to the same logits
  tiny_d        Qwen3-Next: eps 1e-5, mlp_only_layers, decoder_sparse_step 2, partial rotary 0.4, kernel 3, and
                small q/k (scaled conv weights) so that the GDN L2-norm eps is visible
The MRoPE of Qwen3.5 (rope_parameters.mrope_section / mrope_interleaved) is checked here to equal plain RoPE
for text positions (all three components equal), and the C++ forward, which computes plain RoPE, is compared
against HF's MRoPE logits.

Usage: python3 tests/reference/make_qwen35_golden.py [--out tests/data/model]
"""
import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (Qwen3_5ForCausalLM, Qwen3_5MoeForCausalLM, Qwen3_5MoeTextConfig, Qwen3_5TextConfig,
                          Qwen3NextConfig, Qwen3NextForCausalLM)

sys.path.insert(0, os.path.dirname(__file__))
from make_golden import Recorder, greedy, record, reinit, split_forward  # noqa: E402

assert torch.__version__.startswith("2.15"), torch.__version__
assert transformers.__version__ == "5.23.0", transformers.__version__

COMMON = dict(eos_token_id=None, bos_token_id=None, pad_token_id=None, dtype="float32")


def rope(theta, partial, mrope=None, interleaved=None):
    p = {"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": partial}
    if mrope is not None:
        p["mrope_section"] = mrope
    if interleaved is not None:
        p["mrope_interleaved"] = interleaved
    return p


CONFIGS = {
    "q35_dense_a": dict(  # dense, tied, GDN 1:2, GQA 2, interval 4, rotary 8 of 32 with interleaved MRoPE
        cls="dense", layout="causal_lm", mtp=True,
        cfg=dict(vocab_size=512, hidden_size=64, intermediate_size=112, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, linear_num_key_heads=2, linear_num_value_heads=4,
                 linear_key_head_dim=16, linear_value_head_dim=24, linear_conv_kernel_dim=4, rms_norm_eps=1e-6,
                 tie_word_embeddings=True, max_position_embeddings=256, mtp_num_hidden_layers=1,
                 rope_parameters=rope(10000.0, 0.25, [2, 1, 1], True)),
        prompt_len=24, seed=41),
    "q35_dense_b": dict(  # dense, untied, GDN 1:1, MHA, interval 2, eps 1e-5, kernel 3, rotary 0.5, 80 tokens
        cls="dense", layout="multimodal", mtp=False,
        cfg=dict(vocab_size=384, hidden_size=48, intermediate_size=80, num_hidden_layers=4, num_attention_heads=2,
                 num_key_value_heads=2, head_dim=16, linear_num_key_heads=2, linear_num_value_heads=2,
                 linear_key_head_dim=24, linear_value_head_dim=24, linear_conv_kernel_dim=3, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, max_position_embeddings=512,
                 layer_types=["linear_attention", "full_attention"] * 2,
                 rope_parameters=rope(1000000.0, 0.5, [2, 1, 1], False)),
        prompt_len=80, seed=42),
    "q35_moe_a": dict(  # MoE top-2 of 8, GDN 1:2, GQA 4, interval 4, untied
        cls="moe", layout="causal_lm", mtp=False,
        cfg=dict(vocab_size=512, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
                 head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16,
                 linear_value_head_dim=16, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                 shared_expert_intermediate_size=40, rms_norm_eps=1e-6, tie_word_embeddings=False,
                 max_position_embeddings=256, rope_parameters=rope(10000000.0, 0.25, [1, 1, 0], True)),
        prompt_len=24, seed=43),
    "q35_moe_b": dict(  # MoE top-1 of 4, fused experts, tied, eps 1e-5, full rotary, interval 3, 80 tokens, MTP
        cls="moe", layout="fused", mtp=True,
        cfg=dict(vocab_size=640, hidden_size=48, num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=2,
                 head_dim=24, linear_num_key_heads=4, linear_num_value_heads=8, linear_key_head_dim=8,
                 linear_value_head_dim=12, linear_conv_kernel_dim=4, num_experts=4, num_experts_per_tok=1,
                 moe_intermediate_size=24, shared_expert_intermediate_size=32, rms_norm_eps=1e-5,
                 tie_word_embeddings=True, max_position_embeddings=1024, mtp_num_hidden_layers=1,
                 layer_types=(["linear_attention"] * 2 + ["full_attention"]) * 2,
                 rope_parameters=rope(10000.0, 1.0, [4, 4, 4], True)),
        prompt_len=80, seed=44),
    "tiny_d": dict(  # Qwen3-Next: eps 1e-5, mlp_only [1], sparse step 2, partial rotary 0.4 (8 of 20), kernel 3
        cls="next", layout="causal_lm", mtp=False,
        cfg=dict(vocab_size=320, hidden_size=56, intermediate_size=72, num_hidden_layers=4, full_attention_interval=2,
                 num_attention_heads=2, num_key_value_heads=1, head_dim=20, partial_rotary_factor=0.4,
                 linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=12, linear_value_head_dim=16,
                 linear_conv_kernel_dim=3, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True,
                 moe_intermediate_size=24, shared_expert_intermediate_size=16, decoder_sparse_step=2,
                 mlp_only_layers=[1], rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=256,
                 rope_theta=10000.0),
        # GDN conv weights scaled down so that |q|^2 and |k|^2 are ~1e-5: the L2 normalisation's eps (HF: a
        # fixed 1e-6, not rms_norm_eps) then shows in the logits far above the golden tolerance
        conv_scale=0.003, prompt_len=24, seed=45),
}


def make_model(spec):
    seed = spec["seed"]
    kind = spec["cls"]
    if kind == "dense":
        cfg, cls = Qwen3_5TextConfig(**spec["cfg"], **COMMON), Qwen3_5ForCausalLM
    elif kind == "moe":
        cfg, cls = Qwen3_5MoeTextConfig(**spec["cfg"], **COMMON), Qwen3_5MoeForCausalLM
    else:
        cfg, cls = Qwen3NextConfig(**spec["cfg"], **COMMON), Qwen3NextForCausalLM
    torch.manual_seed(seed)
    model = cls(cfg).eval().float()
    reinit(model, seed)
    if "conv_scale" in spec:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("conv1d.weight"):
                    p.mul_(spec["conv_scale"])
    return model


def check_mrope_is_plain_rope(model):
    """Text positions: HF's MRoPE (3 equal position rows) gives exactly the plain RoPE cos/sin."""
    rot = model.model.rotary_emb
    T = 40
    x = torch.zeros(1, T, model.config.hidden_size)
    pos3 = torch.arange(T).view(1, 1, -1).expand(3, 1, -1)
    cos, sin = rot(x, pos3)
    inv = rot.inv_freq
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    assert torch.equal(cos[0], emb.cos()) and torch.equal(sin[0], emb.sin()), "MRoPE differs from plain RoPE"


def mtp_tensors(model, saved, seed):
    """Random MTP head tensors in the real checkpoints' naming (HF does not run them), shaped like one
    full-attention layer of the saved checkpoint `saved` (attention + the family's MLP)."""
    c = model.config
    g = torch.Generator().manual_seed(seed + 2000)
    H = c.hidden_size
    t = {"mtp.fc.weight": torch.randn(H, 2 * H, generator=g) / (2 * H) ** 0.5,
         "mtp.pre_fc_norm_embedding.weight": 0.2 * torch.randn(H, generator=g),
         "mtp.pre_fc_norm_hidden.weight": 0.2 * torch.randn(H, generator=g),
         "mtp.norm.weight": 0.2 * torch.randn(H, generator=g)}
    full = next(i for i, lt in enumerate(c.layer_types) if lt == "full_attention")
    prefix = f"model.layers.{full}."
    for k, v in sorted(saved.items()):
        if k.startswith(prefix):
            t["mtp.layers.0." + k[len(prefix):]] = torch.randn(v.shape, generator=g) * (0.2 if "norm" in k else
                                                                                       1.0 / v.shape[-1] ** 0.5)
    return t


def fuse_experts(tensors, c):
    out = {}
    E = c.num_experts
    for k, v in tensors.items():
        if ".mlp.experts." not in k:
            out[k] = v
    for prefix in sorted({k.split(".mlp.experts.")[0] for k in tensors if ".mlp.experts." in k}):
        e = prefix + ".mlp.experts."
        out[e + "gate_up_proj"] = torch.stack(
            [torch.cat([tensors[f"{e}{i}.gate_proj.weight"], tensors[f"{e}{i}.up_proj.weight"]], 0) for i in range(E)])
        out[e + "down_proj"] = torch.stack([tensors[f"{e}{i}.down_proj.weight"] for i in range(E)])
    return out


def write_layout(folder, model, spec, ids, logits):
    """Rewrites the saved checkpoint into the spec's on-disk layout (same weights)."""
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    if spec["mtp"]:
        tensors.update(mtp_tensors(model, tensors, spec["seed"]))
    cfg = json.load(open(os.path.join(folder, "config.json")))
    if spec["layout"] == "fused":
        tensors = fuse_experts(tensors, model.config)
        save_file(tensors, path, metadata={"format": "pt"})
        # HF must load the fused form (its conversion mapping) to the same logits.
        m2 = Qwen3_5MoeForCausalLM.from_pretrained(folder).eval().float()
        with torch.no_grad():
            l2 = m2(input_ids=ids).logits[0]
        assert torch.allclose(l2, logits, atol=0, rtol=0) or float((l2 - logits).norm() / logits.norm()) < 1e-6
    elif spec["layout"] == "multimodal":
        tensors = {("model.language_model." + k[len("model."):] if k.startswith("model.") else k): v
                   for k, v in tensors.items()}
        g = torch.Generator().manual_seed(spec["seed"] + 3000)
        tensors["model.visual.patch_embed.proj.weight"] = torch.randn(8, 3, 2, 4, 4, generator=g)
        tensors["model.visual.merger.linear_fc2.weight"] = torch.randn(cfg["hidden_size"], 8, generator=g)
        text = dict(cfg)
        for k in ("architectures", "transformers_version", "tie_word_embeddings"):
            text.pop(k, None)
        cfg = {"architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5",
               "tie_word_embeddings": model.config.tie_word_embeddings, "text_config": text,
               "vision_config": {"model_type": "qwen3_5_vision", "depth": 1, "hidden_size": 8,
                                 "out_hidden_size": cfg["hidden_size"]},
               "image_token_id": 248056, "video_token_id": 248057, "transformers_version": transformers.__version__}
        save_file(tensors, path, metadata={"format": "pt"})
    else:
        save_file(tensors, path, metadata={"format": "pt"})
    if spec["mtp"]:
        target = cfg["text_config"] if "text_config" in cfg else cfg
        target["mtp_num_hidden_layers"] = 1
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=2, sort_keys=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "model"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    summary = {}
    for name, spec in CONFIGS.items():
        model = make_model(spec)
        if spec["cls"] != "next":
            check_mrope_is_plain_rope(model)
        folder = os.path.join(args.out, name)
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, safe_serialization=True)
        ids = torch.randint(0, model.config.vocab_size, (1, spec["prompt_len"]),
                            generator=torch.Generator().manual_seed(spec["seed"] + 7))
        rec = Recorder()
        logits = record(model, ids, rec)
        cut = spec["prompt_len"] // 2 + 3
        split = split_forward(model, ids, cut)
        split_err = float((split - logits).norm() / logits.norm())
        rec.add("split_logits", split)
        tokens, gap = greedy(model, ids)
        write_layout(folder, model, spec, ids, logits)
        meta = {"config": name, "family": spec["cls"], "layout": spec["layout"], "prompt": ids[0].tolist(),
                "greedy": tokens, "greedy_min_top2_gap": gap, "split_cut": cut, "split_rel_l2_vs_full": split_err,
                "hf_multi_token_cached_forward_ok": split_err < 1e-5, "mrope_checked_equal_to_rope": spec["cls"] != "next",
                "torch": torch.__version__, "transformers": transformers.__version__}
        rec.write(folder, meta)
        summary[name] = {"greedy_min_top2_gap": gap, "split_rel_l2": split_err}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
