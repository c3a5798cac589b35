// Weight binding for a qwen3next GGUF (llama.cpp's convert_hf_to_gguf.py, Qwen3NextModel): the file's
// tensors bound, in place, onto the same Qwen3NextWeights the safetensors loader fills, so one forward runs
// both formats. What the converter changed is mapped back here, not in the forward:
//   - in_proj_qkvz was split into blk.N.attn_qkv [q all | k all | v all heads] and blk.N.attn_gate (z):
//     the GDN "split" projection form (GdnWeights::in_proj_qkv / in_proj_z);
//   - A_log became ssm_a = -exp(A_log) (GdnWeights::A); dt_bias is ssm_dt.bias;
//   - zero-centred norm weights are stored as 1 + w (NormStorage::OnePlus); ssm_norm is plain as in HF;
//   - conv1d is squeezed to [C, K]; experts are fused per projection (ffn_{gate,up,down}_exps [E, ., .]);
//   - the MTP layer is block num_hidden_layers (nextn.eh_proj / enorm / hnorm / shared_head_norm + layer).
// Tensor names are llama.cpp's (gguf-py constants.py MODEL_TENSOR names for MODEL_ARCH.QWEN3NEXT).
#pragma once
#include "model/config.h"
#include "model/gguf.h"
#include "model/weights.h"

namespace qnext {

// Binds every tensor `cfg` implies (cfg from gguf_config(f)). All problems are collected and thrown as one
// GgufError naming the file: missing / misshaped tensors, types qnext cannot run (IQ*, TQ*, MXFP4, ... named
// with the tensor), block types on tensors that must be float (norms, conv, gates), unexpected tensors.
// Views point into `f`'s mapping and stay valid while `f` lives.
Qwen3NextWeights bind_gguf_weights(const Qwen3NextConfig& cfg, const GgufFile& f);

}  // namespace qnext
