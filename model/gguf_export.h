// `qnext quantize`: a Hugging Face Qwen3-Next folder written as a qwen3next GGUF that llama.cpp loads, laid
// out exactly as llama.cpp's convert_hf_to_gguf.py writes it (tensor names, the in_proj_qkvz split into
// attn_qkv + attn_gate, ssm_a = -exp(A_log), 1 + w zero-centred norms, squeezed conv, stacked experts, the
// MTP layer as block num_hidden_layers with nextn.* tensors; the same metadata keys; the tokenizer as
// tokenizer.ggml.* and the chat template). All arithmetic is f32, as the converter's, so a Q8_0 export of a
// checkpoint is byte-identical, tensor by tensor, to `convert_hf_to_gguf.py --outtype q8_0` of it
// (tests/loading/test_gguf_export.cpp). The K-quant mixes (q4_k_m, q5_k_m, q6_k) pick llama-quantize's type
// per tensor; their block fits are qnext's own (kern::ref::quantize_row), not bit-identical to llama-quantize.
// Tensors stream one at a time: memory stays at one tensor.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace qnext {

struct GgufExportOptions {
    std::string type = "q8_0";   // q8_0 | q6_k | q5_k_m | q4_k_m | bf16 | f16 | f32 (norms, gates, conv stay f32)
    std::function<void(size_t done, size_t total, const std::string& tensor)> progress;
};

struct GgufExportResult {
    size_t tensors = 0;
    uint64_t bytes = 0;   // file size
};

// Throws std::runtime_error naming the folder / tensor on anything it cannot export (unknown type, FP8
// weights, a tokenizer that is not byte-level BPE).
GgufExportResult export_gguf(const std::filesystem::path& hf_dir, const std::filesystem::path& out,
                             const GgufExportOptions& options);

}  // namespace qnext
