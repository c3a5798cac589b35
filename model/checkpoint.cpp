// Random-weight checkpoint writer. Each tensor's values come from a counter-based generator keyed by
// (seed, tensor name): element i depends only on i, so output is identical across sharding and threads.
#include "model/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/progress.h"

namespace qnext {
namespace {

namespace fs = std::filesystem;

uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t tensor_key(uint64_t seed, const std::string& name) {
    uint64_t h = 0xCBF29CE484222325ull;   // FNV-1a 64
    for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
    return splitmix64(h ^ splitmix64(seed));
}

// Uniform in [0, 1) from counter `i` of stream `key`.
double uniform(uint64_t key, uint64_t i) {
    return static_cast<double>(splitmix64(key + splitmix64(i)) >> 11) * 0x1.0p-53;
}

// Approximately standard normal for element i: Irwin-Hall sum of four 16-bit uniforms from one 64-bit
// draw, centred and scaled to unit variance (support +-3.46; one hash per element keeps writing a
// multi-GiB benchmark checkpoint fast).
double normal(uint64_t key, uint64_t i) {
    const uint64_t r = splitmix64(key + splitmix64(i));
    const double sum = static_cast<double>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    // each term uniform on {0..65535}: mean 32767.5, variance (65536^2 - 1) / 12
    constexpr double kMean = 4 * 32767.5;
    constexpr double kStd = 37837.2272;   // sqrt(4 * (65536^2 - 1) / 12)
    return (sum - kMean) / kStd;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class Init { ZeroCentredNorm, GatedNorm, ALog, DtBias, Conv, Projection };

Init init_for(const TensorSpec& t) {
    if (ends_with(t.name, "linear_attn.norm.weight")) return Init::GatedNorm;
    if (ends_with(t.name, ".A_log")) return Init::ALog;
    if (ends_with(t.name, ".dt_bias")) return Init::DtBias;
    if (ends_with(t.name, "conv1d.weight")) return Init::Conv;
    if (t.shape.size() == 1 && t.name.find("norm") != std::string::npos) return Init::ZeroCentredNorm;
    return Init::Projection;
}

// Value of element i of tensor t (see checkpoint.h for the scales).
float init_value(Init kind, const Qwen3NextConfig& cfg, uint64_t key, uint64_t i) {
    switch (kind) {
        case Init::ZeroCentredNorm: return static_cast<float>(0.05 * normal(key, i));
        case Init::GatedNorm: return static_cast<float>(1.0 + 0.05 * normal(key, i));
        case Init::ALog: return static_cast<float>(std::log(1.0 + 15.0 * uniform(key, i)));
        case Init::DtBias: {
            const double lo = std::log(1e-3), hi = std::log(1e-1);
            const double dt = std::exp(lo + (hi - lo) * uniform(key, i));
            return static_cast<float>(dt + std::log(-std::expm1(-dt)));   // softplus^-1(dt)
        }
        case Init::Conv:
            return static_cast<float>(normal(key, i) / std::sqrt(static_cast<double>(cfg.linear_conv_kernel_dim)));
        case Init::Projection: return static_cast<float>(cfg.initializer_range * normal(key, i));
    }
    return 0.0f;
}

// Writes the tensors' bytes in order, generating them chunk by chunk (bounded memory).
void write_tensor_data(std::ofstream& out, const TensorSpec& t, const Qwen3NextConfig& cfg,
                       const CheckpointOptions& opts, ProgressBar& bar, const std::string& file) {
    const Init kind = init_for(t);
    const uint64_t key = tensor_key(opts.seed, t.name);
    const int64_t n = t.numel();
    const size_t elem = dtype_size(opts.dtype);
    constexpr int64_t kChunk = 1 << 20;
    std::vector<unsigned char> buf(static_cast<size_t>(std::min<int64_t>(n, kChunk)) * elem);
    for (int64_t start = 0; start < n; start += kChunk) {
        const int64_t count = std::min(kChunk, n - start);
#pragma omp parallel for schedule(static) if (count >= 65536)
        for (int64_t k = 0; k < count; ++k) {
            const float v = init_value(kind, cfg, key, static_cast<uint64_t>(start + k));
            unsigned char* dst = buf.data() + static_cast<size_t>(k) * elem;
            if (opts.dtype == TensorDType::BF16) {
                const uint16_t b = f32_to_bf16(v);
                dst[0] = static_cast<unsigned char>(b & 0xFF);
                dst[1] = static_cast<unsigned char>(b >> 8);
            } else {
                uint32_t u;
                std::memcpy(&u, &v, 4);
                for (int byte = 0; byte < 4; ++byte) dst[byte] = static_cast<unsigned char>(u >> (8 * byte));
            }
        }
        out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(count * elem));
        if (!out) throw std::runtime_error(file + ": write failed (disk full?)");
        bar.advance(static_cast<uint64_t>(count) * elem);
    }
}

// Writes one .safetensors file holding `tensors` (in order).
void write_safetensors(const fs::path& path, const std::vector<const TensorSpec*>& tensors,
                       const Qwen3NextConfig& cfg, const CheckpointOptions& opts, ProgressBar& bar) {
    nlohmann::ordered_json header;
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    const size_t elem = dtype_size(opts.dtype);
    for (const TensorSpec* t : tensors) {
        const uint64_t bytes = static_cast<uint64_t>(t->numel()) * elem;
        header[t->name] = {{"dtype", dtype_name(opts.dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');   // pad so the data buffer is 8-byte aligned
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(path.string() + ": cannot create");
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(h.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const TensorSpec* t : tensors) write_tensor_data(out, *t, cfg, opts, bar, path.string());
    out.close();
    if (!out) throw std::runtime_error(path.string() + ": write failed");
}

std::string shard_name(int k, int of) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, of);
    return buf;
}

}  // namespace

uint16_t f32_to_bf16(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return static_cast<uint16_t>((u >> 16) | 0x40);   // quiet NaN
    const uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);   // round to nearest, ties to even
    return static_cast<uint16_t>((u + rounding) >> 16);
}

float bf16_to_f32(uint16_t bits) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

void write_random_checkpoint(const Qwen3NextConfig& cfg_in, const fs::path& out_dir, const CheckpointOptions& opts) {
    if (opts.dtype != TensorDType::F32 && opts.dtype != TensorDType::BF16)
        throw std::runtime_error("make-checkpoint: --dtype must be bf16 or f32");
    if (opts.shards < 1) throw std::runtime_error("make-checkpoint: --shards must be >= 1");
    Qwen3NextConfig cfg = cfg_in;
    if (opts.mtp_layers >= 0) cfg.mtp_num_hidden_layers = opts.mtp_layers;
    cfg.quantization = QuantizationConfig{};   // random weights are never quantized
    cfg.torch_dtype = opts.dtype == TensorDType::BF16 ? "bfloat16" : "float32";
    validate_config(cfg, "make-checkpoint config");

    const std::vector<TensorSpec> specs = expected_tensors(cfg, opts.expert_layout, cfg.mtp_num_hidden_layers);
    if (static_cast<size_t>(opts.shards) > specs.size())
        throw std::runtime_error("make-checkpoint: --shards " + std::to_string(opts.shards) + " exceeds the " +
                                 std::to_string(specs.size()) + " tensors");
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw std::runtime_error(out_dir.string() + ": cannot create directory: " + ec.message());
    // Remove model files of a previous run so the folder holds exactly one layout.
    for (const auto& e : fs::directory_iterator(out_dir))
        if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
            fs::remove(e.path());

    const size_t elem = dtype_size(opts.dtype);
    uint64_t total = 0;
    for (const TensorSpec& t : specs) total += static_cast<uint64_t>(t.numel()) * elem;
    ProgressBar bar("writing " + out_dir.filename().string(), total, opts.progress);

    if (opts.shards == 1) {
        std::vector<const TensorSpec*> all;
        for (const TensorSpec& t : specs) all.push_back(&t);
        write_safetensors(out_dir / "model.safetensors", all, cfg, opts, bar);
    } else {
        // Contiguous runs of tensors, cut when the running byte count passes k/K of the total;
        // every shard gets at least one tensor.
        std::vector<std::vector<const TensorSpec*>> shards(static_cast<size_t>(opts.shards));
        uint64_t acc = 0;
        size_t k = 0;
        for (size_t i = 0; i < specs.size(); ++i) {
            const size_t left_tensors = specs.size() - i, left_shards = shards.size() - k;
            if (!shards[k].empty() && (left_tensors < left_shards ||
                                       acc >= total / shards.size() * (k + 1)) && k + 1 < shards.size())
                ++k;
            shards[k].push_back(&specs[i]);
            acc += static_cast<uint64_t>(specs[i].numel()) * elem;
        }
        nlohmann::ordered_json index;
        index["metadata"] = {{"total_size", total}};
        nlohmann::ordered_json map = nlohmann::ordered_json::object();
        for (size_t s = 0; s < shards.size(); ++s) {
            const std::string name = shard_name(static_cast<int>(s + 1), opts.shards);
            write_safetensors(out_dir / name, shards[s], cfg, opts, bar);
            for (const TensorSpec* t : shards[s]) map[t->name] = name;
        }
        index["weight_map"] = map;
        std::ofstream idx(out_dir / "model.safetensors.index.json", std::ios::trunc);
        idx << index.dump(2) << "\n";
        if (!idx) throw std::runtime_error((out_dir / "model.safetensors.index.json").string() + ": write failed");
    }
    bar.finish();
    std::ofstream cj(out_dir / "config.json", std::ios::trunc);
    cj << config_to_json(cfg).dump(2) << "\n";
    if (!cj) throw std::runtime_error((out_dir / "config.json").string() + ": write failed");
}

}  // namespace qnext
