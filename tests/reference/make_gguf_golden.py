#!/usr/bin/env python3
"""Writes small GGUF files with gguf-py's GGUFWriter (the writer llama.cpp's converter uses) and, for each, a
JSON dump of what gguf-py's GGUFReader reads back: metadata (type, value), tensor infos (name, ne, type,
offset, byte size) and an FNV-1a 64 hash of each tensor's data bytes. tests/loading/test_gguf.cpp parses the
same files and must agree exactly.

    python3 tests/reference/make_gguf_golden.py   # writes tests/data/loading/gguf/
"""
import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "loading" / "gguf"


def fnv1a64(b: bytes) -> str:
    h = 0xCBF29CE484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def value_json(field):
    """(type name, value) of a ReaderField, arrays recursively."""
    types = field.types
    if types[0] == V.ARRAY and len(types) > 2 and types[1] == V.ARRAY:
        # GGUFReader flattens arrays of arrays; test_gguf.cpp checks test.nested's structure itself.
        return {"type": "ARRAY", "elem": "ARRAY", "value": None}
    if types[0] == V.ARRAY:
        return {"type": "ARRAY", "elem": types[-1].name, "value": field.contents()}
    return {"type": types[0].name, "value": field.contents()}


def dump(path: pathlib.Path):
    r = gguf.GGUFReader(path)
    meta = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        meta[name] = value_json(f)
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "ne": [int(x) for x in t.shape],
            "type": int(t.tensor_type),
            "type_name": t.tensor_type.name,
            "offset": int(t.data_offset) - int(r.data_offset),
            "nbytes": int(t.n_bytes),
            "fnv1a64": fnv1a64(bytes(np.asarray(t.data).tobytes())),
        })
    out = {"version": int(r.fields["GGUF.version"].contents()), "alignment": int(r.alignment),
           "data_offset": int(r.data_offset), "file_size": path.stat().st_size, "metadata": meta, "tensors": tensors}
    path.with_suffix(".json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


def write_small(path: pathlib.Path, alignment=None):
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(path, arch="qwen3next")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 1e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo <|im_start|>\n")
    w.add_string("test.empty", "")
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.25])
    w.add_array("test.strings", ["a", "bc", "", "Ġhello"])
    w.add_array("test.empty_array", [])
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_block_count(2)
    w.add_context_length(4096)
    # Tensors of each kind a quantized Qwen3-Next file holds: f32 norms, f16/bf16 matrices, block formats.
    w.add_tensor("f32.weight", rng.standard_normal((3, 5), dtype=np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((7,), dtype=np.float32).astype(np.float16))
    bf16 = gguf.quants.quantize(rng.standard_normal((2, 8), dtype=np.float32), Q.BF16)
    w.add_tensor("bf16.weight", bf16, raw_shape=bf16.shape, raw_dtype=Q.BF16)
    q8 = gguf.quants.quantize(rng.standard_normal((2, 64), dtype=np.float32), Q.Q8_0)
    w.add_tensor("q8_0.weight", q8, raw_shape=q8.shape, raw_dtype=Q.Q8_0)
    q40 = gguf.quants.quantize(rng.standard_normal((3, 32), dtype=np.float32), Q.Q4_0)
    w.add_tensor("q4_0.weight", q40, raw_shape=q40.shape, raw_dtype=Q.Q4_0)
    q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
    w.add_tensor("q4_k.weight", q4k, raw_shape=q4k.shape, raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, align in [("small.gguf", None), ("aligned64.gguf", 64)]:
        p = OUT / name
        write_small(p, align)
        dump(p)
        print(p, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
