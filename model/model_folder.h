// A loaded Hugging Face model folder: config.json + safetensors (single or sharded) + bound weights,
// and where the tokenizer lives. All weight data stays in the mmap owned by `store`.
#pragma once
#include <filesystem>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace qnext {

struct ModelFolder {
    std::filesystem::path dir;
    Qwen3NextConfig config;    // mtp_num_hidden_layers reflects the mtp.* tensors present
    TensorStore store;
    Qwen3NextWeights weights;  // views into store

    ModelFolder() = default;
    ModelFolder(ModelFolder&&) noexcept = default;
    ModelFolder& operator=(ModelFolder&&) noexcept = default;
    ModelFolder(const ModelFolder&) = delete;
    ModelFolder& operator=(const ModelFolder&) = delete;

    // Directory holding tokenizer.json (+ tokenizer_config.json): the model dir itself.
    const std::filesystem::path& tokenizer_path() const { return dir; }
    bool has_tokenizer() const { return std::filesystem::exists(dir / "tokenizer.json"); }
};

struct LoadOptions {
    bool progress = true;   // progress bar on stderr (drawn only when stderr is a TTY)
    bool prefetch = true;   // read all pages up front when the weights fit in physical memory
};

// Loads `dir`: config.json, the safetensors files, then bind_weights. Errors name the file/tensor.
ModelFolder load_model_folder(const std::filesystem::path& dir, const LoadOptions& opts);
inline ModelFolder load_model_folder(const std::filesystem::path& dir, bool progress) {
    LoadOptions o;
    o.progress = progress;
    return load_model_folder(dir, o);
}

}  // namespace qnext
