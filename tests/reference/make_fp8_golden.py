#!/usr/bin/env python3
"""An FP8 checkpoint of the demo model laid out as Qwen's "-FP8" releases are (block-scaled e4m3, 128x128
blocks: `<name>` F8_E4M3 + `<name>_scale_inv` F32, quantization_config {quant_method fp8, fmt e4m3,
weight_block_size [128, 128]}), and the truth for it: HF transformers' fp32 forward of the dequantized
weights (float8_e4m3fn -> float32, times the block scale, as transformers' FP8 dequantization does).

Quantized: every attention / linear-attention (in_proj_qkvz, in_proj_ba, out_proj) / expert / shared-expert
projection; kept bf16 (as the
releases keep them): embeddings, lm_head, norms, conv, the router and the shared-expert gate. The MTP head
is left out (not needed for the logits).

  python3 tests/reference/make_fp8_golden.py   # writes tests/data/model/demo-fp8/ and its golden
"""
import json
import os
import pathlib
import shutil
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/reference/demo_model"))
import demo_model as dm  # noqa: E402

OUT = REPO / "tests/data/model/demo-fp8"
B = 128


def quantize(w):
    r, c = w.shape
    w = w.float()
    nr, nc = (r + B - 1) // B, (c + B - 1) // B
    scale = torch.zeros(nr, nc)
    q = torch.zeros(r, c, dtype=torch.float8_e4m3fn)
    for i in range(nr):
        for j in range(nc):
            blk = w[i * B:(i + 1) * B, j * B:(j + 1) * B]
            s = blk.abs().max() / 448.0
            s = s if s > 0 else torch.tensor(1.0)
            scale[i, j] = s
            q[i * B:(i + 1) * B, j * B:(j + 1) * B] = (blk / s).to(torch.float8_e4m3fn)
    return q, scale


def dequantize(q, scale):
    w = q.float()
    r, c = w.shape
    s = scale.repeat_interleave(B, 0)[:r].repeat_interleave(B, 1)[:, :c]
    return w * s


def main():
    src = load_file(str(REPO / "models/demo/model.safetensors"))
    fp8, deq = {}, {}
    for k, v in src.items():
        if k.startswith("mtp."):
            continue
        if v.ndim == 2 and "proj" in k.split(".")[-2]:   # *_proj, in_proj_qkvz, in_proj_ba
            q, s = quantize(v)
            fp8[k], fp8[k + "_scale_inv"] = q, s
            deq[k] = dequantize(q, s)
        else:
            fp8[k] = v
            deq[k] = v.float()
    cfg = json.loads((REPO / "models/demo/config.json").read_text())
    cfg.pop("num_nextn_predict_layers", None)
    cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                  "weight_block_size": [B, B]}
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    save_file(fp8, str(OUT / "model.safetensors"))
    (OUT / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:   # the dequantized weights, f32, as an ordinary HF folder
        c2 = dict(cfg)
        c2.pop("quantization_config")
        c2["torch_dtype"] = "float32"
        pathlib.Path(tmp, "config.json").write_text(json.dumps(c2))
        save_file({k: v.contiguous() for k, v in deq.items()}, os.path.join(tmp, "model.safetensors"))
        from transformers import Qwen3NextForCausalLM
        torch.set_num_threads(1)
        model = Qwen3NextForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        hf = json.loads((REPO / "tests/data/demo/golden_hf.json").read_text())
        ids = hf["instruct"]["ids"][:256]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        pos = list(range(0, 256, 16)) + [255]
        save_file({"logits": logits[pos].contiguous()}, str(OUT / "golden_logits.safetensors"))
        (OUT / "golden.json").write_text(json.dumps({"ids": ids, "positions": pos, "torch": torch.__version__}) + "\n")
    print("wrote", OUT, sum(f.stat().st_size for f in OUT.iterdir()), "bytes")


if __name__ == "__main__":
    main()
