#!/usr/bin/env python3
"""Golden data for tests/loading, written by the reference safetensors/torch implementation.

Writes tests/data/loading/peer_dtypes.safetensors (one small tensor per dtype qnext reads, plus an
FP8 weight with its block-scale tensor, and __metadata__) and peer_dtypes.json with every element
decoded to float by torch. Pins: tests/reference/requirements.txt (torch 2.15.0, safetensors 0.8.0).
Also writes tests/data/loading/hf_tiny/ (transformers 5.23 Qwen3NextForCausalLM.save_pretrained of a tiny
random bf16 model: per-expert layout) and hf_tiny_fused/ (the same weights saved straight from state_dict(),
i.e. transformers v5's fused expert layout mlp.experts.gate_up_proj [E, 2I, H] / down_proj [E, H, I]).
Run from the repo root:  python3 tests/reference/make_loading_golden.py
"""
import json
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "loading"


def main() -> None:
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(3, 5, generator=g) * 3.0
    specials = torch.tensor([0.0, -0.0, 1.0, -2.5, 1e-8, 65504.0, 448.0, -448.0, 0.015625, 3.0e-3])
    tensors = {
        "t.f32": base.clone(),
        "t.f16": base.to(torch.float16),
        "t.bf16": base.to(torch.bfloat16),
        "t.special_f32": specials.clone(),
        "t.special_bf16": specials.to(torch.bfloat16),
        "t.special_f16": specials.to(torch.float16),
        "t.special_f8": specials.to(torch.float8_e4m3fn),
        "w.weight": (torch.randn(4, 6, generator=g) * 10).to(torch.float8_e4m3fn),
        "w.weight_scale_inv": torch.tensor([[0.5]], dtype=torch.float32),
        "t.scalar": torch.tensor(7.25),
        "t.empty": torch.zeros(0, 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, OUT / "peer_dtypes.safetensors", metadata={"format": "pt", "producer": "make_loading_golden.py"})
    decoded = {
        name: {"dtype": str(t.dtype), "shape": list(t.shape), "values": t.float().flatten().tolist()}
        for name, t in tensors.items()
    }
    (OUT / "peer_dtypes.json").write_text(json.dumps(decoded, indent=1) + "\n")
    write_hf_tiny()


def write_hf_tiny() -> None:
    import shutil

    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3NextConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, full_attention_interval=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        linear_num_key_heads=1, linear_num_value_heads=2, linear_key_head_dim=4, linear_value_head_dim=4,
        num_experts=3, num_experts_per_tok=2, moe_intermediate_size=6, shared_expert_intermediate_size=5,
        max_position_embeddings=128,
    )
    model = Qwen3NextForCausalLM(cfg).to(torch.bfloat16)
    with torch.no_grad():  # make every tensor non-trivial (HF inits norms to constants)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    out = OUT / "hf_tiny"
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    fused = OUT / "hf_tiny_fused"
    shutil.rmtree(fused, ignore_errors=True)
    fused.mkdir()
    shutil.copy(out / "config.json", fused / "config.json")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, fused / "model.safetensors", metadata={"format": "pt"})


if __name__ == "__main__":
    main()
