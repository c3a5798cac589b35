// kernels/cuda/common.cuh: CUDA_CHECK, warp/block reductions and bf16 loads shared by the CUDA kernels.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels/tensor.h"

#define CUDA_CHECK(expr)                                                                          \
    do {                                                                                          \
        cudaError_t err_ = (expr);                                                                \
        if (err_ != cudaSuccess)                                                                  \
            throw std::runtime_error(std::string("CUDA error at ") + __FILE__ + ":" +             \
                                     std::to_string(__LINE__) + ": " + #expr + ": " +             \
                                     cudaGetErrorString(err_));                                   \
    } while (0)

// Check the last kernel launch (launch configuration errors) without synchronising.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace qnext::kern::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Sum over the block; every thread gets the result. `smem` holds >= 32 floats.
__device__ __forceinline__ float block_sum(float v, float* smem) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // smem may still be read from a previous call
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    const int n_warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < n_warps ? smem[threadIdx.x] : 0.0f;
    if (warp == 0) v = warp_sum(v);
    if (threadIdx.x == 0) smem[0] = v;
    __syncthreads();
    return smem[0];
}

// Element i of a weight stored as f32 or bf16.
__device__ __forceinline__ float load_w(const void* w, int is_bf16, long i) {
    return is_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(w)[i]) : static_cast<const float*>(w)[i];
}

}  // namespace qnext::kern::cuda
