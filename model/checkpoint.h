// Random-weight checkpoint writer (`qnext make-checkpoint`): config.json + model.safetensors, or K
// shards model-0000k-of-0000K.safetensors + model.safetensors.index.json. Deterministic: the bytes of a
// tensor depend only on (seed, tensor name, dtype), never on sharding or thread count.
// Scales: zero-centred norms ~ N(0, 0.05) (applied as 1 + w), GDN gated norm ~ 1 + N(0, 0.05),
// A_log = log(U[1, 16]) (HF init), dt_bias = softplus^-1(dt), dt = exp(U[ln 1e-3, ln 1e-1]) (Mamba init),
// conv1d ~ N(0, 1/sqrt(K)), all other matrices ~ N(0, initializer_range) (HF init, 0.02 by default).
// "N" is an Irwin-Hall approximation (sum of 4 uniforms: exact mean and variance, tails cut at 3.46 sd).
#pragma once
#include <cstdint>
#include <filesystem>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace qnext {

struct CheckpointOptions {
    uint64_t seed = 0;
    TensorDType dtype = TensorDType::BF16;     // F32 or BF16
    int shards = 1;                            // 1 = single model.safetensors
    ExpertLayout expert_layout = ExpertLayout::PerExpert;
    int64_t mtp_layers = -1;                   // -1: cfg.mtp_num_hidden_layers
    bool progress = false;                     // progress bar on stderr (TTY only)
};

// Writes the folder (creating `out_dir`; existing model files in it are replaced).
void write_random_checkpoint(const Qwen3NextConfig& cfg, const std::filesystem::path& out_dir,
                             const CheckpointOptions& opts);

// Round-to-nearest-even f32 -> bf16 bits, and back.
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t bits);

}  // namespace qnext
