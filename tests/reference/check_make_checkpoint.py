#!/usr/bin/env python3
"""Peer check of `qnext make-checkpoint` (not run by CI): the folders it writes must load in the
reference stack exactly.

For bf16/f32, single and sharded, per-expert and fused layouts, this script
 - reads every tensor with the reference `safetensors` reader and checks the names/shapes against
   the transformers 5.23 model's own state (per-expert names as save_pretrained writes them);
 - loads the folder with Qwen3NextForCausalLM.from_pretrained and requires no missing/unexpected
   keys (MTP tensors are ignored by HF by design) and that embed/lm_head tensors round-trip bit-exactly;
 - checks sharded == single tensor by tensor and runs a forward pass (finite logits).
Usage: python3 tests/reference/check_make_checkpoint.py path/to/qnext [config.json]
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from transformers import Qwen3NextForCausalLM


def read_all(folder: pathlib.Path) -> dict:
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    out = {}
    for f in files:
        with safe_open(folder / f, "pt") as st:
            for k in st.keys():
                out[k] = st.get_tensor(k)
    return out


def main() -> None:
    qnext = sys.argv[1]
    config = sys.argv[2] if len(sys.argv) > 2 else "configs/models/tiny.json"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qnext_ckpt_"))
    for dtype in ("bf16", "f32"):
        folders = {}
        for shards in (1, 3):
            for fused in (False, True):
                d = tmp / f"{dtype}_{shards}_{int(fused)}"
                cmd = [qnext, "make-checkpoint", "--config", config, "--seed", "9", "--dtype", dtype,
                       "--shards", str(shards), "--mtp", "1", "--out", str(d)] + (["--fused-experts"] if fused else [])
                subprocess.run(cmd, check=True, capture_output=True)
                tensors = read_all(d)
                model, info = Qwen3NextForCausalLM.from_pretrained(d, output_loading_info=True)
                assert not info["missing_keys"], info["missing_keys"]
                assert not [k for k in info["unexpected_keys"] if not k.startswith("mtp.")], info["unexpected_keys"]
                assert any(k.startswith("mtp.") for k in tensors)
                sd = model.state_dict()
                want_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
                for k in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.linear_attn.A_log"):
                    assert tensors[k].dtype == want_dtype
                    assert torch.equal(tensors[k], sd[k].to(want_dtype)), k
                if not fused:  # HF fuses per-expert tensors at load: gate rows first, then up
                    gu = sd["model.layers.0.mlp.experts.gate_up_proj"]
                    g0 = tensors["model.layers.0.mlp.experts.1.gate_proj.weight"]
                    assert torch.equal(gu[1, : g0.shape[0]].to(want_dtype), g0)
                else:
                    assert torch.equal(sd["model.layers.0.mlp.experts.gate_up_proj"].to(want_dtype),
                                       tensors["model.layers.0.mlp.experts.gate_up_proj"])
                logits = model(torch.tensor([[1, 2, 3, 4]])).logits
                assert torch.isfinite(logits).all()
                folders[(shards, fused)] = tensors
                print(f"ok {d.name}: {len(tensors)} tensors, logits std {logits.float().std():.4f}")
        for fused in (False, True):
            a, b = folders[(1, fused)], folders[(3, fused)]
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "sharded != single"
    print("all checks passed")


if __name__ == "__main__":
    main()
