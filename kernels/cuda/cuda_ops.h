// kernels/cuda/cuda_ops.h: host-side entry points of the CUDA backend (library qnext_kernels_cuda,
// built when QNEXT_WITH_CUDA). Plain C++17 so both nvcc and the C++20 code include it. Launchers take
// Tensor views whose data lives on the device (Device::CUDA); they validate nothing beyond what
// kernels/ops.cpp already checked. Covered by tests/kernels/test_ops_cuda.cpp (SKIPPED without a GPU).
#pragma once
#include <cstddef>
#include <string>

#include "kernels/tensor.h"

namespace qnext::kern::cuda {

int device_count();                 // 0 when no device/driver (never throws)
std::string device_name(int device);

// Device memory (throws std::runtime_error with the CUDA error string on failure).
void* device_alloc(size_t bytes);
void device_free(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void synchronize();

// y = x * rstd * (zero_centered ? 1 + w : w), rstd = 1/sqrt(mean(x^2) + eps) over the last dim.
// x, out: contiguous f32 [rows, D] on the device; w: [D] f32/bf16 on the device.
void rms_norm(const Tensor& x, const Tensor& w, float eps, bool zero_centered, const Tensor& out);

// y[n] = sum_k x[k] * w[n, k] for a bf16 weight [N, K] and f32 x [K] (decode GEMV), all on the device.
void gemv_bf16(const Tensor& x, const Tensor& w, const Tensor& y);

}  // namespace qnext::kern::cuda
