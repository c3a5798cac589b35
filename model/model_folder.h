// A loaded model: a Hugging Face folder (config.json + safetensors, single or sharded) or a llama.cpp GGUF
// file (metadata + tensors + tokenizer + chat template in one file), with its bound weights and where the
// tokenizer lives. All weight data stays in the mmap owned by `store` / `gguf`.
#pragma once
#include <filesystem>
#include <memory>

#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace qnext {

struct ModelFolder {
    std::filesystem::path dir;     // the folder (for a GGUF: the folder holding the file)
    std::filesystem::path path;    // what was loaded: the folder, or the .gguf file
    Qwen3NextConfig config;    // mtp_num_hidden_layers reflects the mtp.* tensors present
    TensorStore store;                       // safetensors (empty for a GGUF)
    std::shared_ptr<const GgufFile> gguf;    // the GGUF file (null for a folder)
    Qwen3NextWeights weights;  // views into store / gguf

    ModelFolder() = default;
    ModelFolder(ModelFolder&&) noexcept = default;
    ModelFolder& operator=(ModelFolder&&) noexcept = default;
    ModelFolder(const ModelFolder&) = delete;
    ModelFolder& operator=(const ModelFolder&) = delete;

    // What Tokenizer::load takes: the folder (tokenizer.json + tokenizer_config.json) or the GGUF file.
    const std::filesystem::path& tokenizer_path() const { return gguf ? path : dir; }
    bool has_tokenizer() const {
        return gguf ? gguf->find("tokenizer.ggml.tokens") != nullptr : std::filesystem::exists(dir / "tokenizer.json");
    }
};

// True when `path` names something load_model_folder can load: a folder with config.json or a GGUF file.
bool is_model_path(const std::filesystem::path& path);

struct LoadOptions {
    bool progress = true;   // progress bar on stderr (drawn only when stderr is a TTY)
    bool prefetch = true;   // read all pages up front when the weights fit in physical memory
};

// Loads `dir`: config.json, the safetensors files, then bind_weights; or, when `dir` is a GGUF file,
// gguf_config + bind_gguf_weights over its mapping. Errors name the file/tensor.
ModelFolder load_model_folder(const std::filesystem::path& dir, const LoadOptions& opts);
inline ModelFolder load_model_folder(const std::filesystem::path& dir, bool progress) {
    LoadOptions o;
    o.progress = progress;
    return load_model_folder(dir, o);
}

}  // namespace qnext
