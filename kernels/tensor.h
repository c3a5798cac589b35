// kernels/tensor.h: the small non-owning tensor view every op in kernels/ops.h takes, plus an owning
// buffer (TensorBuffer) and the bf16/f16 <-> f32 scalar conversions.
// A view is rank 1..4, row-major shape (shape[0] outermost), strides in ELEMENTS per dim; ops require
// the innermost stride to be 1 and say so in their error. slice()/unflatten() make strided views, so
// e.g. the per-head interleaved [q | gate] halves of q_proj's output are views, not copies.
// Covered by tests/kernels/test_ops.cpp (TensorView.* cases).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

namespace qnext::kern {

// I32: token ids / expert ids. Q*: GGML block-quantized weights (kernels/quant.h): a row of K values is
// K / block_elems blocks; only whole rows (or whole blocks) are addressed, so strides stay in elements.
enum class DType : uint8_t {
    F32, F16, BF16, I32,
    Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    F8_B128,   // FP8 e4m3 in blocks of 128 per row, each led by its f32 scale (repacked HF block-scaled FP8)
};
enum class Device : uint8_t { CPU, CUDA };

const char* dtype_name(DType t);
bool is_quantized(DType t);                 // a GGML block format
int64_t dtype_block_elems(DType t);         // 1 for scalar types
size_t dtype_block_bytes(DType t);          // bytes per block (= element size for scalar types)
size_t dtype_size(DType t);                 // element size; throws std::invalid_argument for block types
// Bytes of `n` consecutive elements; throws std::invalid_argument when n is not a multiple of the block.
size_t dtype_bytes(DType t, int64_t n);

// ---- scalar conversions (round-to-nearest-even, NaN preserved) ----
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
// Round an f32 to the nearest bf16 value and back (the rounding HF applies at bf16 points).
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Non-owning view. `data` points at element [0,0,..]. Inputs are passed as const Tensor& and are
// never written even though `data` is a non-const pointer.
struct Tensor {
    void* data = nullptr;
    DType dtype = DType::F32;
    Device device = Device::CPU;
    int rank = 0;
    std::array<int64_t, 4> shape{};   // row-major; shape[rank-1] is the innermost dim
    std::array<int64_t, 4> stride{};  // in elements

    // Contiguous view over existing memory (const memory such as an mmap'd weight is accepted; ops
    // never write their inputs).
    static Tensor view(const void* data, DType dtype, std::initializer_list<int64_t> shape,
                       Device device = Device::CPU);
    static Tensor f32(const float* data, std::initializer_list<int64_t> shape) {
        return view(data, DType::F32, shape);
    }

    bool empty() const { return data == nullptr; }
    int64_t dim(int i) const { return shape[i < 0 ? rank + i : i]; }  // negative = from the end
    int64_t numel() const;
    size_t nbytes() const { return dtype_bytes(dtype, numel()); }  // if contiguous
    bool contiguous() const;
    // Number of innermost rows: numel / dim(-1). Row r's address is row_ptr(r) (any outer strides).
    int64_t rows() const { return rank == 0 ? 0 : numel() / shape[rank - 1]; }
    void* row_ptr(int64_t r) const;
    template <class T> T* ptr() const { return static_cast<T*>(data); }
    float* f32() const;  // checks dtype == F32, throws otherwise

    // Views (no copies). Block-quantized tensors are sliced at block boundaries of the innermost dim only.
    Tensor slice(int d, int64_t start, int64_t len) const;         // sub-range of dim d
    Tensor select(int d, int64_t i) const;                           // drop dim d at index i
    Tensor unflatten(int d, std::initializer_list<int64_t> parts) const;  // split dim d into parts
    Tensor reshape(std::initializer_list<int64_t> new_shape) const;  // contiguous views only
    Tensor flatten_rows() const;  // [prod(outer), inner]; needs outer dims mergeable

    std::string str() const;  // e.g. "bf16[12288, 2048]" (strides added when not contiguous)
};

// Owning, 64-byte aligned, zero-initialised CPU storage with a contiguous view.
class TensorBuffer {
public:
    TensorBuffer() = default;
    TensorBuffer(DType dtype, std::initializer_list<int64_t> shape);
    ~TensorBuffer();
    TensorBuffer(TensorBuffer&& o) noexcept;
    TensorBuffer& operator=(TensorBuffer&& o) noexcept;
    TensorBuffer(const TensorBuffer&) = delete;
    TensorBuffer& operator=(const TensorBuffer&) = delete;

    const Tensor& t() const { return view_; }
    operator const Tensor&() const { return view_; }  // NOLINT: buffers pass where views are taken
    float* f32() const { return view_.f32(); }
    TensorBuffer clone() const;  // deep copy

private:
    Tensor view_;
};

}  // namespace qnext::kern
