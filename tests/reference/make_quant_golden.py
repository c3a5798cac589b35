#!/usr/bin/env python3
"""Golden data for the GGML block dequantizers (kernels/cpu/ref/quant.cpp), made by gguf-py's numpy
reference (gguf==0.19.0, numpy==2.4.6): for every type, random blocks (f16 scale fields set to finite
random values so every code path is exercised with real numbers) and gguf.quants.dequantize of them.

Writes tests/data/kernels/quant/<type>.bin: raw blocks, then the float32 values (little endian), and
index.json with the type id, element count and byte sizes."""
import json
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "kernels" / "quant"
# type -> byte offsets of the f16 scale fields inside one block
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
BLOCKS = 24


def main():
    rng = np.random.default_rng(20261203)
    OUT.mkdir(parents=True, exist_ok=True)
    index = {}
    for t, fields in F16_FIELDS.items():
        block_elems, block_bytes = GGML_QUANT_SIZES[t]
        raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
        for off in fields:
            scales = (rng.standard_normal(BLOCKS) * 0.05).astype(np.float16)
            raw[:, off:off + 2] = scales.view(np.uint8).reshape(BLOCKS, 2)
        n = BLOCKS * block_elems
        values = dequantize(raw.reshape(-1), t).astype(np.float32).reshape(-1)
        assert values.size == n and np.all(np.isfinite(values))
        (OUT / f"{t.name.lower()}.bin").write_bytes(raw.tobytes() + values.astype("<f4").tobytes())
        index[t.name] = {"type": int(t), "elements": n, "block_bytes": int(block_bytes), "blocks": BLOCKS}
    # The float formats: every f16 / bf16 bit pattern but NaNs (their payloads are not compared).
    for t, dt in ((T.F16, np.float16), (T.BF16, None)):
        bits = np.arange(65536, dtype=np.uint16)
        if t == T.F16:
            vals = bits.view(np.float16).astype(np.float32)
        else:
            vals = (bits.astype(np.uint32) << 16).view(np.float32)
        keep = ~np.isnan(vals)
        bits, vals = bits[keep], vals[keep]
        got = dequantize(bits.view(np.uint8), t).astype(np.float32).reshape(-1)
        assert np.array_equal(got, vals)
        (OUT / f"{t.name.lower()}.bin").write_bytes(bits.astype("<u2").tobytes() + got.astype("<f4").tobytes())
        index[t.name] = {"type": int(t), "elements": int(bits.size), "block_bytes": 2, "blocks": int(bits.size)}
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
