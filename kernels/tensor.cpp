// kernels/tensor.cpp: Tensor view helpers, TensorBuffer storage, f16 conversions.
// Covered by tests/kernels/test_ops.cpp (TensorView.* cases).
#include "kernels/tensor.h"

#include <cstdlib>
#include <new>
#include <sstream>
#include <stdexcept>

namespace qnext::kern {

namespace {
struct DTypeLayout {
    const char* name;
    int64_t block_elems;
    size_t block_bytes;
};
// Block sizes of the GGML formats as ggml defines them (QK4_0 = 32 ... QK_K = 256).
DTypeLayout layout(DType t) {
    switch (t) {
        case DType::F32: return {"f32", 1, 4};
        case DType::I32: return {"i32", 1, 4};
        case DType::F16: return {"f16", 1, 2};
        case DType::BF16: return {"bf16", 1, 2};
        case DType::Q4_0: return {"q4_0", 32, 18};
        case DType::Q4_1: return {"q4_1", 32, 20};
        case DType::Q5_0: return {"q5_0", 32, 22};
        case DType::Q5_1: return {"q5_1", 32, 24};
        case DType::Q8_0: return {"q8_0", 32, 34};
        case DType::Q2_K: return {"q2_K", 256, 84};
        case DType::Q3_K: return {"q3_K", 256, 110};
        case DType::Q4_K: return {"q4_K", 256, 144};
        case DType::Q5_K: return {"q5_K", 256, 176};
        case DType::Q6_K: return {"q6_K", 256, 210};
        case DType::F8_B128: return {"f8_e4m3_b128", 128, 132};
    }
    return {"?", 1, 0};
}
}  // namespace

const char* dtype_name(DType t) { return layout(t).name; }
bool is_quantized(DType t) { return layout(t).block_elems > 1; }
int64_t dtype_block_elems(DType t) { return layout(t).block_elems; }
size_t dtype_block_bytes(DType t) { return layout(t).block_bytes; }

size_t dtype_size(DType t) {
    const DTypeLayout l = layout(t);
    if (l.block_elems != 1)
        throw std::invalid_argument(std::string("dtype_size: ") + l.name + " is a block format (use dtype_bytes)");
    return l.block_bytes;
}

size_t dtype_bytes(DType t, int64_t n) {
    const DTypeLayout l = layout(t);
    if (n < 0 || n % l.block_elems != 0)
        throw std::invalid_argument(std::string("dtype_bytes: ") + std::to_string(n) + " elements of " + l.name +
                                    " are not whole blocks of " + std::to_string(l.block_elems));
    return static_cast<size_t>(n / l.block_elems) * l.block_bytes;
}

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                --exp;
            }
            u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u); // overflow -> inf
    if (abs < 0x38800000u) {  // f16 subnormal or zero: round abs * 2^24 to an integer (RNE)
        if (abs < 0x33000000u) return sign;
        const uint32_t e = abs >> 23;
        const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;  // >= 14
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) ++r;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t r = abs - (112u << 23);  // rebias exponent
    r += 0xfffu + ((r >> 13) & 1u);   // RNE on the 13 dropped bits
    return static_cast<uint16_t>(sign | (r >> 13));
}

Tensor Tensor::view(const void* data, DType dtype, std::initializer_list<int64_t> shape,
                    Device device) {
    if (shape.size() < 1 || shape.size() > 4)
        throw std::invalid_argument("Tensor::view: rank must be 1..4, got " + std::to_string(shape.size()));
    Tensor t;
    t.data = const_cast<void*>(data);
    t.dtype = dtype;
    t.device = device;
    t.rank = static_cast<int>(shape.size());
    int i = 0;
    for (int64_t s : shape) {
        if (s < 0) throw std::invalid_argument("Tensor::view: negative dimension");
        t.shape[i++] = s;
    }
    int64_t st = 1;
    for (int d = t.rank - 1; d >= 0; --d) {
        t.stride[d] = st;
        st *= t.shape[d];
    }
    return t;
}

int64_t Tensor::numel() const {
    if (rank == 0) return 0;
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
}

bool Tensor::contiguous() const {
    int64_t st = 1;
    for (int d = rank - 1; d >= 0; --d) {
        if (shape[d] != 1 && stride[d] != st) return false;
        st *= shape[d];
    }
    return true;
}

void* Tensor::row_ptr(int64_t r) const {
    int64_t off = 0;
    for (int d = rank - 2; d >= 0; --d) {
        const int64_t i = r % shape[d];
        r /= shape[d];
        off += i * stride[d];
    }
    return static_cast<char*>(data) + dtype_bytes(dtype, off);
}

float* Tensor::f32() const {
    if (dtype != DType::F32) throw std::invalid_argument("Tensor::f32: tensor is " + str());
    return static_cast<float*>(data);
}

Tensor Tensor::slice(int d, int64_t start, int64_t len) const {
    if (d < 0) d += rank;
    if (d < 0 || d >= rank || start < 0 || len < 0 || start + len > shape[d])
        throw std::invalid_argument("Tensor::slice: dim " + std::to_string(d) + " range [" +
                                    std::to_string(start) + ", +" + std::to_string(len) + ") out of " + str());
    Tensor t = *this;
    if (is_quantized(dtype) && d == rank - 1 &&
        (start % dtype_block_elems(dtype) != 0 || len % dtype_block_elems(dtype) != 0))
        throw std::invalid_argument("Tensor::slice: [" + std::to_string(start) + ", +" + std::to_string(len) +
                                    ") of the innermost dim of " + str() + " is not whole blocks");
    t.data = static_cast<char*>(data) + dtype_bytes(dtype, start * stride[d]);
    t.shape[d] = len;
    return t;
}

Tensor Tensor::select(int d, int64_t i) const {
    if (d < 0) d += rank;
    if (rank < 2) throw std::invalid_argument("Tensor::select: needs rank >= 2, got " + str());
    Tensor t = slice(d, i, 1);
    for (int j = d; j < rank - 1; ++j) {
        t.shape[j] = t.shape[j + 1];
        t.stride[j] = t.stride[j + 1];
    }
    t.rank = rank - 1;
    t.shape[t.rank] = 0;
    t.stride[t.rank] = 0;
    return t;
}

Tensor Tensor::unflatten(int d, std::initializer_list<int64_t> parts) const {
    if (d < 0) d += rank;
    const int np = static_cast<int>(parts.size());
    if (d < 0 || d >= rank || np < 1 || rank - 1 + np > 4)
        throw std::invalid_argument("Tensor::unflatten: bad dim/parts for " + str());
    int64_t prod = 1;
    for (int64_t p : parts) prod *= p;
    if (prod != shape[d])
        throw std::invalid_argument("Tensor::unflatten: parts do not multiply to dim " + std::to_string(d) +
                                    " of " + str());
    Tensor t = *this;
    t.rank = rank - 1 + np;
    for (int j = rank - 1; j > d; --j) {  // shift trailing dims right
        t.shape[j + np - 1] = shape[j];
        t.stride[j + np - 1] = stride[j];
    }
    int64_t st = stride[d];
    auto it = parts.end();
    for (int j = d + np - 1; j >= d; --j) {
        --it;
        t.shape[j] = *it;
        t.stride[j] = st;
        st *= *it;
    }
    return t;
}

Tensor Tensor::reshape(std::initializer_list<int64_t> new_shape) const {
    if (!contiguous()) throw std::invalid_argument("Tensor::reshape: view is not contiguous: " + str());
    Tensor t = view(data, dtype, new_shape, device);
    if (t.numel() != numel())
        throw std::invalid_argument("Tensor::reshape: element count differs for " + str() + " -> " + t.str());
    return t;
}

Tensor Tensor::flatten_rows() const {
    if (rank < 1) throw std::invalid_argument("Tensor::flatten_rows: empty tensor");
    for (int d = 0; d + 2 < rank; ++d)
        if (shape[d + 1] != 1 && stride[d] != stride[d + 1] * shape[d + 1])
            throw std::invalid_argument("Tensor::flatten_rows: outer dims not mergeable in " + str());
    Tensor t = *this;
    t.rank = 2;
    t.shape = {rows(), shape[rank - 1], 0, 0};
    t.stride = {rank >= 2 ? stride[rank - 2] : shape[0], stride[rank - 1], 0, 0};
    if (rank == 1) t.stride[0] = shape[0];
    return t;
}

std::string Tensor::str() const {
    std::ostringstream os;
    os << dtype_name(dtype) << '[';
    for (int d = 0; d < rank; ++d) os << (d ? ", " : "") << shape[d];
    os << ']';
    if (!contiguous()) {
        os << "{stride ";
        for (int d = 0; d < rank; ++d) os << (d ? "," : "") << stride[d];
        os << '}';
    }
    if (device == Device::CUDA) os << "@cuda";
    return os.str();
}

TensorBuffer::TensorBuffer(DType dtype, std::initializer_list<int64_t> shape) {
    view_ = Tensor::view(nullptr, dtype, shape);
    const size_t bytes = (view_.nbytes() + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes ? bytes : 64);
    view_.data = p;
}

TensorBuffer::~TensorBuffer() { std::free(view_.data); }

TensorBuffer::TensorBuffer(TensorBuffer&& o) noexcept : view_(o.view_) { o.view_ = Tensor{}; }

TensorBuffer& TensorBuffer::operator=(TensorBuffer&& o) noexcept {
    if (this != &o) {
        std::free(view_.data);
        view_ = o.view_;
        o.view_ = Tensor{};
    }
    return *this;
}

TensorBuffer TensorBuffer::clone() const {
    TensorBuffer b;
    b.view_ = view_;
    const size_t bytes = (view_.nbytes() + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::bad_alloc();
    if (view_.data) std::memcpy(p, view_.data, view_.nbytes());
    b.view_.data = p;
    return b;
}

}  // namespace qnext::kern
