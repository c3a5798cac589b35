// kernels/cuda/gemv.cu: bf16-weight GEMV for decode, y = W x (W [N, K] bf16 row-major, x [K] f32).
// One warp per output row, 16-byte vector loads of W when K % 8 == 0, fp32 accumulation.
// Compared with the CPU reference matmul by tests/kernels/test_ops_cuda.cpp.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace qnext::kern::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

__global__ void gemv_bf16_kernel(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                 float* __restrict__ y, long N, long K) {
    const long row = static_cast<long>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const __nv_bfloat16* wr = w + row * K;
    float acc = 0.0f;
    if (K % 8 == 0) {  // 8 bf16 = 16 bytes per lane per step
        const uint4* w4 = reinterpret_cast<const uint4*>(wr);
        for (long i = lane; i < K / 8; i += 32) {
            const uint4 pk = w4[i];
            const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&pk);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float2 f = __bfloat1622float2(h[j]);
                acc += f.x * x[i * 8 + 2 * j] + f.y * x[i * 8 + 2 * j + 1];
            }
        }
    } else {
        for (long i = lane; i < K; i += 32) acc += __bfloat162float(wr[i]) * x[i];
    }
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

}  // namespace

void gemv_bf16(const Tensor& x, const Tensor& w, const Tensor& y) {
    if (w.dtype != DType::BF16 || w.rank != 2 || x.dtype != DType::F32 || y.dtype != DType::F32 ||
        x.numel() != w.dim(1) || y.numel() != w.dim(0))
        throw std::invalid_argument("kernels::gemv_bf16 (cuda): need x f32 [K], w bf16 [N, K], y f32 [N]; got x " +
                                    x.str() + ", w " + w.str() + ", y " + y.str());
    const long N = w.dim(0), K = w.dim(1);
    if (N == 0) return;
    const unsigned blocks = static_cast<unsigned>((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
    gemv_bf16_kernel<<<blocks, kWarpsPerBlock * 32>>>(x.ptr<float>(), w.ptr<__nv_bfloat16>(), y.ptr<float>(), N, K);
    CUDA_CHECK_LAUNCH();
}

}  // namespace qnext::kern::cuda
