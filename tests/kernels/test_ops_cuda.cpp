// tests/kernels/test_ops_cuda.cpp: CUDA kernels against the CPU reference (ctest label gpu).
// Device buffers carry guard regions filled with a sentinel pattern that must survive the kernel
// (catches out-of-bounds writes). Without a CUDA build or device every case reports SKIPPED and passes.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "tests/kernels/op_case.h"
#ifdef QNEXT_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace qnext::kern::test {
namespace {

#ifdef QNEXT_WITH_CUDA
constexpr size_t kGuard = 256;  // bytes before and after each buffer
constexpr unsigned char kSentinel = 0xA5;

// A device buffer with guard regions; `t` views the payload.
struct DeviceBuf {
    void* base = nullptr;
    size_t bytes = 0;
    Tensor t;
    DeviceBuf(const void* host, size_t n, DType dt, std::initializer_list<int64_t> shape) : bytes(n) {
        base = cuda::device_alloc(n + 2 * kGuard);
        std::vector<unsigned char> img(n + 2 * kGuard, kSentinel);
        if (host) std::memcpy(img.data() + kGuard, host, n);
        cuda::copy_to_device(base, img.data(), img.size());
        t = Tensor::view(static_cast<char*>(base) + kGuard, dt, shape, Device::CUDA);
    }
    ~DeviceBuf() { cuda::device_free(base); }
    std::vector<unsigned char> image() const {
        std::vector<unsigned char> img(bytes + 2 * kGuard);
        cuda::copy_to_host(img.data(), base, img.size());
        return img;
    }
    bool guards_intact() const {
        const auto img = image();
        for (size_t i = 0; i < kGuard; ++i)
            if (img[i] != kSentinel || img[kGuard + bytes + i] != kSentinel) return false;
        return true;
    }
    std::vector<float> floats() const {
        const auto img = image();
        std::vector<float> f(bytes / 4);
        std::memcpy(f.data(), img.data() + kGuard, bytes);
        return f;
    }
};
#endif

// Empty when the device can be used, else the reason to skip. (GTEST_SKIP must be in the test body.)
std::string no_device_reason() {
    if (!cuda_compiled()) return "SKIPPED: built without CUDA (QNEXT_CUDA=OFF or no nvcc)";
    if (!cuda_available()) return "SKIPPED: no CUDA device present";
    return "";
}
#define REQUIRE_DEVICE()                                          \
    do {                                                          \
        const std::string why_ = no_device_reason();              \
        if (!why_.empty()) GTEST_SKIP() << why_;                  \
    } while (0)

std::string rms_case_name(const ::testing::TestParamInfo<std::tuple<int64_t, int64_t, bool, DType>>& info) {
    std::string n = "rows";  // built with += (GCC 12 -Wrestrict false positive on "lit" + std::string)
    n += std::to_string(std::get<0>(info.param));
    n += "_D";
    n += std::to_string(std::get<1>(info.param));
    n += std::get<2>(info.param) ? "_zc_" : "_plain_";
    n += dtype_name(std::get<3>(info.param));
    return n;
}
std::string gemv_case_name(const ::testing::TestParamInfo<std::tuple<int64_t, int64_t>>& info) {
    std::string n = "N";
    n += std::to_string(std::get<0>(info.param));
    n += "_K";
    n += std::to_string(std::get<1>(info.param));
    return n;
}

class CudaRmsNorm : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool, DType>> {};

TEST_P(CudaRmsNorm, MatchesReference) {
    REQUIRE_DEVICE();
#ifdef QNEXT_WITH_CUDA
    const auto [rows, D, zero_centered, wt] = GetParam();
    const uint64_t seed = 9000 + static_cast<uint64_t>(rows * 31 + D);
    Rng r(seed);
    const std::vector<float> x = r.normals(static_cast<size_t>(rows * D), 3.0f);
    const Stored w(wt, r.normals(static_cast<size_t>(D), 0.2f));
    const NormKind kind = zero_centered ? NormKind::ZeroCentered : NormKind::Plain;
    std::vector<float> want(x.size());
    with_backend(Backend::Reference, [&] {
        rms_norm(Tensor::f32(x.data(), {rows, D}), w.view({D}), 1e-6f, kind, Tensor::f32(want.data(), {rows, D}));
        return 0;
    });
    DeviceBuf dx(x.data(), x.size() * 4, DType::F32, {rows, D});
    DeviceBuf dw(w.data(), static_cast<size_t>(D) * dtype_size(wt), wt, {D});
    DeviceBuf dy(nullptr, x.size() * 4, DType::F32, {rows, D});
    rms_norm(dx.t, dw.t, 1e-6f, kind, dy.t);  // dispatched by ops.cpp on Device::CUDA
    cuda::synchronize();
    EXPECT_TRUE(dy.guards_intact()) << "out-of-bounds write, seed " << seed;
    const Compare c = compare("y", dy.floats(), want, 1e-10);
    EXPECT_TRUE(c.ok) << "seed " << seed << ": " << c.msg;
#endif
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaRmsNorm,
                         ::testing::Values(std::make_tuple(int64_t{1}, int64_t{2048}, true, DType::BF16),
                                           std::make_tuple(int64_t{7}, int64_t{256}, true, DType::F32),
                                           std::make_tuple(int64_t{33}, int64_t{128}, false, DType::BF16),
                                           std::make_tuple(int64_t{5}, int64_t{1000}, false, DType::F32)),
                         rms_case_name);

class CudaGemv : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(CudaGemv, Bf16MatchesReference) {
    REQUIRE_DEVICE();
#ifdef QNEXT_WITH_CUDA
    const auto [N, K] = GetParam();
    const uint64_t seed = 9500 + static_cast<uint64_t>(N + K);
    Rng r(seed);
    const std::vector<float> x = r.normals(static_cast<size_t>(K));
    const Stored w(DType::BF16, r.normals(static_cast<size_t>(N * K), 0.05f));
    std::vector<float> want(static_cast<size_t>(N));
    with_backend(Backend::Reference, [&] {
        matmul(Tensor::f32(x.data(), {1, K}), w.view({N, K}), Tensor::f32(want.data(), {1, N}));
        return 0;
    });
    DeviceBuf dx(x.data(), x.size() * 4, DType::F32, {K});
    DeviceBuf dw(w.data(), static_cast<size_t>(N * K) * 2, DType::BF16, {N, K});
    DeviceBuf dy(nullptr, static_cast<size_t>(N) * 4, DType::F32, {N});
    cuda::gemv_bf16(dx.t, dw.t, dy.t);
    cuda::synchronize();
    EXPECT_TRUE(dy.guards_intact()) << "out-of-bounds write, seed " << seed;
    const Compare c = compare("y", dy.floats(), want, 1e-10);
    EXPECT_TRUE(c.ok) << "seed " << seed << ": " << c.msg;
#endif
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaGemv,
                         ::testing::Values(std::make_tuple(int64_t{512}, int64_t{2048}),
                                           std::make_tuple(int64_t{33}, int64_t{200}),  // K % 8 == 0, N tail
                                           std::make_tuple(int64_t{7}, int64_t{130})),  // scalar path
                         gemv_case_name);

}  // namespace
}  // namespace qnext::kern::test
