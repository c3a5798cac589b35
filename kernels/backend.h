// kernels/backend.h: the one place that chooses how ops run. Chosen once (first use) from the
// environment variable QNEXT_KERNELS = auto | ref | cpu (default auto = fast CPU paths when the CPU
// has AVX2+FMA, else the scalar reference), overridable with set_backend(). Tensors on Device::CUDA
// run CUDA kernels when the build has QNEXT_WITH_CUDA and a device is present; a CUDA build on a
// machine without a device prints one notice line on stderr and runs everything on the CPU.
// Covered by tests/kernels/test_ops.cpp (Backend.* cases).
#pragma once
#include <string>

namespace qnext::kern {

enum class Backend { Reference, Cpu };

Backend backend();                  // the active CPU backend
void set_backend(Backend b);        // throws std::runtime_error if the CPU lacks AVX2+FMA for Cpu
const char* backend_name(Backend b);  // "ref" | "cpu"

struct CpuFeatures {
    bool avx2_fma = false;  // AVX2 + FMA + F16C: baseline for the fast CPU paths
    bool avx512 = false;    // AVX-512 F/BW/VL
    bool avx512_bf16 = false;
    bool avx512_vnni = false;   // vpdpbusd (integer dot products of the quantized matmuls)
};
const CpuFeatures& cpu_features();

// Instruction set of the fast CPU microkernels: the best the CPU has (AVX-512 over AVX2), or forced
// lower with set_cpu_isa / QNEXT_CPU_ISA=avx2 (tests use this to cover both paths on one machine).
enum class CpuIsa { Avx2, Avx512 };
CpuIsa cpu_isa();
void set_cpu_isa(CpuIsa isa);  // throws std::runtime_error if the CPU lacks it
const char* cpu_isa_name(CpuIsa isa);
std::string cpu_features_string();  // e.g. "avx2 fma avx512f avx512bw avx512vl"

// Worker threads of the fast CPU paths (kernels/cpu/thread_pool.h); default: QNEXT_THREADS, else
// OMP_NUM_THREADS, else all cores.
void set_num_threads(int n);
// Backend notices on stderr (e.g. "built with CUDA but no CUDA device found"): off unless the CLI's --verbose.
void set_verbose(bool verbose);
int num_threads();

// CUDA: compiled in (QNEXT_WITH_CUDA) and at least one device usable.
bool cuda_compiled();
bool cuda_available();
std::string cuda_device_name();  // "" when none

// One line describing the active setup, e.g. "kernels: cpu (avx512), 2 threads, cuda: none".
std::string backend_summary();

}  // namespace qnext::kern
