#!/usr/bin/env python3
"""Golden data for tests/kernels/test_hf_golden.cpp: the Qwen3-Next building blocks run through the
Hugging Face transformers implementation itself (modeling_qwen3_next.py, float32, CPU), on small
random inputs. Pinned peers: tests/reference/requirements.txt (torch 2.15.0, transformers 5.23.0).

Writes tests/data/kernels/hf_golden.bin (concatenated little-endian float32 arrays) and
hf_golden.json ({"name": {"offset": float index, "shape": [...]}}, plus "meta"). CI never runs this.
Usage: python3 tests/reference/make_kernel_golden.py
"""
import json
import pathlib
import types

import torch
import torch.nn.functional as F
import transformers
from transformers.models.qwen3_next import modeling_qwen3_next as hf
from transformers.models.qwen3_next.configuration_qwen3_next import Qwen3NextConfig

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "kernels"
torch.manual_seed(1234)
arrays = {}


def put(name, t):
    arrays[name] = t.detach().to(torch.float32).contiguous()


@torch.no_grad()
def gdn():
    # Gated delta rule with GVA (2 key heads, 4 value heads), 70 tokens (one full chunk + 6), continuing
    # from a non-zero state; gates computed exactly as Qwen3NextGatedDeltaNet.forward does.
    T, Hk, Hv, D = 70, 2, 4, 16
    q, k = torch.randn(1, T, Hk, D), torch.randn(1, T, Hk, D)
    v = torch.randn(1, T, Hv, D)
    a, b = torch.randn(1, T, Hv) * 2, torch.randn(1, T, Hv) * 2
    A_log = torch.empty(Hv).uniform_(0, 16).log()
    dt_bias = torch.randn(Hv) * 0.5
    beta = b.sigmoid()
    g = -A_log.float().exp() * F.softplus(a.float() + dt_bias)
    s0 = torch.randn(1, Hv, D, D) * 0.1
    o_c, s_c = hf.torch_chunk_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=s0.clone(),
                                               output_final_state=True, use_qk_l2norm_in_kernel=True)
    o_r, s_r = hf.torch_recurrent_gated_delta_rule(q, k, v, g=g, beta=beta, initial_state=s0.clone(),
                                                   output_final_state=True, use_qk_l2norm_in_kernel=True)
    for n, t in dict(q=q, k=k, v=v, a=a, b=b, A_log=A_log, dt_bias=dt_bias, g=g, beta=beta, s0=s0,
                     out_chunk=o_c, state_chunk=s_c, out_rec=o_r, state_rec=s_r).items():
        put("gdn." + n, t[0] if t.dim() > 1 and t.shape[0] == 1 else t)


@torch.no_grad()
def conv():
    # Depthwise causal conv1d + SiLU, the HF torch fallback: silu(conv1d(x, pad K-1)[..., :T]).
    T, C, K = 9, 8, 4
    x = torch.randn(1, C, T)
    w = torch.randn(C, 1, K) * 0.5
    y = F.silu(F.conv1d(x, w, padding=K - 1, groups=C)[..., :T])
    put("conv.x", x[0].t())  # [T, C]
    put("conv.w", w)         # [C, 1, K]
    put("conv.y", y[0].t())  # [T, C]


@torch.no_grad()
def norms():
    D = 40
    x = torch.randn(3, D) * 2
    n = hf.Qwen3NextRMSNorm(D, eps=1e-6)
    n.weight.normal_(0, 0.1)
    put("rmsnorm.x", x); put("rmsnorm.w", n.weight); put("rmsnorm.y", n(x))
    Dg = 16
    xg, z = torch.randn(5, Dg), torch.randn(5, Dg) * 2
    ng = hf.Qwen3NextRMSNormGated(Dg, eps=1e-6)
    ng.weight.data = 1 + torch.randn(Dg) * 0.1
    put("gated.x", xg); put("gated.z", z); put("gated.w", ng.weight); put("gated.y", ng(xg, z))
    put("l2.x", xg); put("l2.y", hf.l2norm(xg, dim=-1, eps=1e-6))


@torch.no_grad()
def rope():
    # Partial NeoX RoPE: head_dim 32, partial_rotary_factor 0.25 -> rot_dim 8, theta 1e7.
    H, Dh, theta, factor = 3, 32, 1e7, 0.25
    cfg = types.SimpleNamespace(rope_parameters={"rope_type": "default", "rope_theta": theta,
                                                 "partial_rotary_factor": factor},
                                head_dim=Dh, hidden_size=H * Dh, num_attention_heads=H)
    inv_freq, _ = hf.Qwen3NextRotaryEmbedding.compute_default_rope_parameters(cfg)
    pos = torch.tensor([[0, 1, 2, 17, 1000, 70000]])
    freqs = pos[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q = torch.randn(1, H, pos.shape[1], Dh)
    qe, _ = hf.apply_rotary_pos_emb(q, q.clone(), cos, sin)
    put("rope.pos", pos[0].float())
    put("rope.x", q[0].transpose(0, 1))   # [T, H, Dh]
    put("rope.y", qe[0].transpose(0, 1))
    return theta, int(Dh * factor)


@torch.no_grad()
def attention():
    # Eager GQA attention (4 q heads, 2 kv heads, head_dim 16) for 5 new tokens after 7 cached ones,
    # causal mask, then the Qwen3-Next sigmoid output gate.
    Hq, Hkv, D, past, T = 4, 2, 16, 7, 5
    S = past + T
    q = torch.randn(1, Hq, T, D)
    k, v = torch.randn(1, Hkv, S, D), torch.randn(1, Hkv, S, D)
    gate = torch.randn(1, T, Hq * D)
    mask = torch.full((T, S), float("-inf")).triu(past + 1)[None, None]
    mod = types.SimpleNamespace(num_key_value_groups=Hq // Hkv, training=False)
    out, _ = hf.eager_attention_forward(mod, q, k, v, mask, scaling=D ** -0.5)
    out = out.reshape(1, T, Hq * D) * torch.sigmoid(gate)
    put("attn.q", q[0].transpose(0, 1)); put("attn.k", k[0].transpose(0, 1)); put("attn.v", v[0].transpose(0, 1))
    put("attn.gate", gate[0]); put("attn.out", out[0])
    return past


@torch.no_grad()
def moe(tag, top_k, norm):
    # Qwen3NextSparseMoeBlock (router softmax -> top-k -> optional renorm, experts, gated shared expert).
    cfg = Qwen3NextConfig(hidden_size=24, num_experts=6, num_experts_per_tok=top_k, moe_intermediate_size=16,
                          shared_expert_intermediate_size=20, norm_topk_prob=norm, hidden_act="silu")
    blk = hf.Qwen3NextSparseMoeBlock(cfg).float()
    for p in blk.parameters():
        p.normal_(0, 0.2)
    x = torch.randn(1, 7, 24)
    y = blk(x)
    put(f"{tag}.x", x[0]); put(f"{tag}.y", y[0])
    put(f"{tag}.router", blk.gate.weight)
    put(f"{tag}.gate_up", blk.experts.gate_up_proj)  # [E, 2F, D]: gate rows then up rows
    put(f"{tag}.down", blk.experts.down_proj)         # [E, D, F]
    put(f"{tag}.s_gate", blk.shared_expert.gate_proj.weight)
    put(f"{tag}.s_up", blk.shared_expert.up_proj.weight)
    put(f"{tag}.s_down", blk.shared_expert.down_proj.weight)
    put(f"{tag}.s_gate_w", blk.shared_expert_gate.weight)


def main():
    gdn()
    conv()
    norms()
    theta, rot = rope()
    past = attention()
    moe("moe_a", 2, True)
    moe("moe_b", 3, False)
    OUT.mkdir(parents=True, exist_ok=True)
    index, blobs, off = {}, [], 0
    for name, t in arrays.items():
        index[name] = {"offset": off, "shape": list(t.shape)}
        blobs.append(t.numpy().astype("<f4").tobytes())
        off += t.numel()
    index["meta"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                     "rope_theta": theta, "rope_rot_dim": rot, "attn_past": past}
    (OUT / "hf_golden.bin").write_bytes(b"".join(blobs))
    (OUT / "hf_golden.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(arrays)} arrays, {off * 4} bytes to {OUT}")


if __name__ == "__main__":
    main()
