// GGML block quantization formats (the weight types of llama.cpp GGUF files) and their reference
// dequantizers. Type ids are GGML's (gguf `ggml_type`). Blocks are read byte by byte (little endian),
// so the code is independent of host alignment and endianness. Bit-exact with gguf-py's numpy
// reference (tests/reference/make_quant_golden.py).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "kernels/tensor.h"

namespace qnext::kern {

enum class QType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
    F8_B128 = 0x10000,   // not a GGML type: FP8 e4m3 x 128 with a leading f32 scale (kern::DType::F8_B128)
};

struct QTypeInfo {
    QType type;
    std::string_view name;   // as llama.cpp prints it: "q4_K", "q8_0", "bf16"
    int64_t block_elems;     // values per block
    int64_t block_bytes;     // bytes per block
};

// The formats qnext can dequantize; nullopt for any other GGML id (IQ*, TQ*, MXFP4, ...).
// (F8_B128's id is outside GGML's range: no GGUF type maps to it.)
std::optional<QTypeInfo> qtype_info(uint32_t ggml_type);

// Bytes of a row of `n` values; throws std::invalid_argument when n is not a multiple of the block size.
size_t qtype_row_bytes(QType type, int64_t n);

// The kernel dtype of a GGML type id (nullopt for types qnext cannot run), and back.
std::optional<DType> dtype_of_ggml(uint32_t ggml_type);
QType qtype_of(DType t);   // throws std::invalid_argument for I32

namespace ref {
// Dequantizes `n` values (a multiple of the block size; std::invalid_argument otherwise) from the
// blocks at `src` into `dst`.
void dequantize_row(QType type, const void* src, float* dst, int64_t n);
// One FP8 e4m3 value (the OCP / torch.float8_e4m3fn encoding: bias 7, no infinities, S.1111.111 = NaN), exact.
float e4m3_to_f32(uint8_t b);
// Quantizes `n` values into blocks of `type`: F32, F16, BF16; Q8_0 exactly as llama.cpp's reference quantizer
// and gguf-py's numpy one (d = max|x| / 127 stored f16, q = roundf(x / d), half away from zero); Q6_K, Q5_K,
// Q4_K, Q5_0, Q5_1 by a weighted least-squares fit of each block's scales (and minima) over a grid of
// candidates (not bit-identical to llama-quantize; error measured against it in test_quant).
// std::invalid_argument for other types or n not a multiple of the block.
void quantize_row(QType type, const float* src, void* dst, int64_t n);
}  // namespace ref

}  // namespace qnext::kern
