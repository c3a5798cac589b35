// kernels/backend.cpp: backend selection (QNEXT_KERNELS env var / set_backend), CPU feature
// detection, OpenMP thread count, CUDA presence. Covered by tests/kernels/test_ops.cpp (Backend.*).
#include "kernels/backend.h"

#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#ifdef QNEXT_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace qnext::kern {
namespace {

CpuFeatures detect() {
    CpuFeatures f;
    __builtin_cpu_init();
    f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    f.avx512 = f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
    f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
    return f;
}

std::atomic<int> g_backend{-1};
std::atomic<int> g_isa{-1};
std::once_flag g_init;

std::atomic<bool> g_verbose{false};

void init_once() {
    std::call_once(g_init, [] {
        const char* env = std::getenv("QNEXT_KERNELS");
        const std::string v = env ? env : "auto";
        Backend b;
        if (v == "auto" || v.empty()) {
            b = cpu_features().avx2_fma ? Backend::Cpu : Backend::Reference;
        } else if (v == "ref") {
            b = Backend::Reference;
        } else if (v == "cpu") {
            if (!cpu_features().avx2_fma)
                throw std::runtime_error("QNEXT_KERNELS=cpu but this CPU lacks AVX2+FMA+F16C (use ref or auto)");
            b = Backend::Cpu;
        } else {
            throw std::runtime_error("QNEXT_KERNELS must be auto, ref or cpu; got '" + v + "'");
        }
        int expected = -1;
        g_backend.compare_exchange_strong(expected, static_cast<int>(b));
        if (g_verbose.load() && cuda_compiled() && !cuda_available())
            std::fprintf(stderr, "qnext: notice: built with CUDA but no CUDA device found; using the CPU backend\n");
    });
}

}  // namespace

void set_verbose(bool v) { g_verbose.store(v); }

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

std::string cpu_features_string() {
    const CpuFeatures& f = cpu_features();
    std::string s;
    if (f.avx2_fma) s += "avx2 fma f16c";
    if (f.avx512) s += " avx512f avx512bw avx512vl";
    if (f.avx512_bf16) s += " avx512bf16";
    if (f.avx512_vnni) s += " avx512vnni";
    return s.empty() ? "scalar" : s;
}

Backend backend() {
    init_once();
    return static_cast<Backend>(g_backend.load(std::memory_order_relaxed));
}

void set_backend(Backend b) {
    init_once();
    if (b == Backend::Cpu && !cpu_features().avx2_fma)
        throw std::runtime_error("kernels: the fast CPU backend needs AVX2+FMA+F16C, which this CPU lacks");
    g_backend.store(static_cast<int>(b));
}

const char* backend_name(Backend b) { return b == Backend::Cpu ? "cpu" : "ref"; }

CpuIsa cpu_isa() {
    int v = g_isa.load(std::memory_order_relaxed);
    if (v < 0) {
        const char* env = std::getenv("QNEXT_CPU_ISA");
        const bool avx2_only = env && std::string(env) == "avx2";
        v = static_cast<int>(cpu_features().avx512 && !avx2_only ? CpuIsa::Avx512 : CpuIsa::Avx2);
        int expected = -1;
        g_isa.compare_exchange_strong(expected, v);
        v = g_isa.load();
    }
    return static_cast<CpuIsa>(v);
}

void set_cpu_isa(CpuIsa isa) {
    if (isa == CpuIsa::Avx512 && !cpu_features().avx512)
        throw std::runtime_error("kernels: this CPU lacks AVX-512 F/BW/VL");
    if (isa == CpuIsa::Avx2 && !cpu_features().avx2_fma)
        throw std::runtime_error("kernels: this CPU lacks AVX2+FMA+F16C");
    g_isa.store(static_cast<int>(isa));
}

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::Avx512 ? "avx512" : "avx2"; }

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("kernels: thread count must be >= 1, got " + std::to_string(n));
    cpu::set_pool_threads(n);
}

int num_threads() { return cpu::pool_threads(); }

bool cuda_compiled() {
#ifdef QNEXT_WITH_CUDA
    return true;
#else
    return false;
#endif
}

bool cuda_available() {
#ifdef QNEXT_WITH_CUDA
    static const bool ok = cuda::device_count() > 0;
    return ok;
#else
    return false;
#endif
}

std::string cuda_device_name() {
#ifdef QNEXT_WITH_CUDA
    return cuda_available() ? cuda::device_name(0) : std::string();
#else
    return {};
#endif
}

std::string backend_summary() {
    const Backend b = backend();
    std::string s = std::string("kernels: ") + backend_name(b);
    if (b == Backend::Cpu) s += " (" + std::string(cpu_isa_name(cpu_isa())) + ")";
    s += ", " + std::to_string(num_threads()) + " threads, cuda: ";
    s += cuda_available() ? cuda_device_name() : (cuda_compiled() ? "no device" : "not built");
    return s;
}

}  // namespace qnext::kern
