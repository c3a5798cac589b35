// kernels/cuda/norm.cu: CUDA RMSNorm (plain and zero-centred "1 + w"), one block per row, plus the
// device-memory helpers of cuda_ops.h. Compared with the CPU reference by tests/kernels/test_ops_cuda.cpp.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace qnext::kern::cuda {

int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver/device" error
        return 0;
    }
    return n;
}

std::string device_name(int device) {
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop.name;
}

void* device_alloc(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
void device_free(void* p) {
    if (p) CUDA_CHECK(cudaFree(p));
}
void copy_to_device(void* dst, const void* src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

namespace {

// x, y: [rows, D] f32; w: [D]. One block of kThreads per row; fp32 statistics.
constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* __restrict__ x, const void* __restrict__ w, int w_bf16,
                                float* __restrict__ y, long D, float eps, int zero_centered) {
    __shared__ float smem[32];
    const float* xr = x + blockIdx.x * D;
    float* yr = y + blockIdx.x * D;
    float ss = 0.0f;
    for (long i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, smem);
    const float rstd = rsqrtf(ss / static_cast<float>(D) + eps);
    for (long i = threadIdx.x; i < D; i += blockDim.x) {
        const float wi = load_w(w, w_bf16, i);
        yr[i] = xr[i] * rstd * (zero_centered ? 1.0f + wi : wi);
    }
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& w, float eps, bool zero_centered, const Tensor& out) {
    if (w.dtype != DType::F32 && w.dtype != DType::BF16)
        throw std::invalid_argument("kernels::rms_norm (cuda): w must be f32 or bf16, got " + w.str());
    const long D = x.dim(-1);
    const long rows = x.rows();
    if (rows == 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads>>>(x.ptr<float>(), w.data, w.dtype == DType::BF16,
                                                              out.ptr<float>(), D, eps, zero_centered ? 1 : 0);
    CUDA_CHECK_LAUNCH();
}

}  // namespace qnext::kern::cuda
