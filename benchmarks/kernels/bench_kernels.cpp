// benchmarks/kernels/bench_kernels.cpp: kernel micro-benchmarks on the real Qwen3-Next-80B shapes.
// Measures this machine's memory read bandwidth (parallel sum over a buffer far larger than the
// caches) and memcpy bandwidth, then the achieved weight-read bandwidth of bf16 GEMV (decode) with
// distinct weights per call so nothing is served from cache, printed as % of the read roofline; plus
// bf16 GEMM (prefill) GFLOP/s, GDN recurrent/chunked and attention-decode timings.
// Usage: bench_kernels [--threads N] [--mib SIZE] [--backend cpu|ref] [--quick]
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"

using namespace qnext::kern;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best-of-n wall time of fn().
template <class F>
double best_of(int n, F&& fn) {
    double best = 1e30;
    for (int i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        fn();
        best = std::min(best, seconds_since(t0));
    }
    return best;
}

// Parallel first-touch fill so pages spread like the kernels' access pattern.
void fill_random_bf16(std::vector<uint16_t>& w, uint64_t seed) {
#pragma omp parallel
    {
        std::mt19937 gen(static_cast<unsigned>(seed + static_cast<uint64_t>(omp_get_thread_num())));
        std::normal_distribution<float> nd(0.0f, 0.02f);
#pragma omp for schedule(static)
        for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(nd(gen));
    }
}

struct Roofline {
    double read_gbs = 0, copy_gbs = 0;
};

Roofline measure_memory(size_t bytes, int reps) {
    Roofline r;
    const size_t n = bytes / sizeof(float);
    std::vector<float> a(n), b(n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) a[i] = b[i] = static_cast<float>(i & 1023);
    volatile float sink = 0;
    const double t_read = best_of(reps, [&] {
        float s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; ++i) s += a[i];
        sink = sink + s;
    });
    r.read_gbs = static_cast<double>(bytes) / t_read / 1e9;
    const double t_copy = best_of(reps, [&] {
#pragma omp parallel
        {
            const size_t nth = static_cast<size_t>(omp_get_num_threads()), tid = static_cast<size_t>(omp_get_thread_num());
            const size_t per = (n + nth - 1) / nth, i0 = std::min(n, tid * per), i1 = std::min(n, i0 + per);
            std::memcpy(b.data() + i0, a.data() + i0, (i1 - i0) * sizeof(float));
        }
    });
    r.copy_gbs = 2.0 * static_cast<double>(bytes) / t_copy / 1e9;  // read + write
    return r;
}

// GEMV y = W x over `count` distinct [N, K] bf16 matrices (total > caches); returns GB/s of weights.
double gemv_bandwidth(int64_t N, int64_t K, int64_t count, int reps) {
    std::vector<uint16_t> w(static_cast<size_t>(N * K * count));
    fill_random_bf16(w, 7);
    std::vector<float> x(static_cast<size_t>(K), 0.5f), y(static_cast<size_t>(N));
    const Tensor xt = Tensor::f32(x.data(), {1, K}), yt = Tensor::f32(y.data(), {1, N});
    const double t = best_of(reps, [&] {
        for (int64_t m = 0; m < count; ++m)
            matmul(xt, Tensor::view(w.data() + m * N * K, DType::BF16, {N, K}), yt);
    });
    return static_cast<double>(w.size() * 2) / t / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"qnext kernel micro-benchmarks (real Qwen3-Next-80B shapes)"};
    int threads = 0, mib = 1024;
    std::string backend_opt = "cpu";
    bool quick = false;
    app.add_option("--threads", threads, "OpenMP threads (default: all cores)");
    app.add_option("--mib", mib, "buffer size for the bandwidth measurement, MiB")->check(CLI::Range(64, 16384));
    app.add_option("--backend", backend_opt, "cpu | ref")->check(CLI::IsMember({"cpu", "ref"}));
    app.add_flag("--quick", quick, "fewer repetitions / smaller weight sets");
    CLI11_PARSE(app, argc, argv);
    try {
        if (threads > 0) set_num_threads(threads);
        set_backend(backend_opt == "ref" ? Backend::Reference : Backend::Cpu);
        const int reps = quick ? 2 : 5;
        std::printf("%s; cpu: %s\n", backend_summary().c_str(), cpu_features_string().c_str());

        const Roofline rf = measure_memory(static_cast<size_t>(mib) << 20, reps);
        std::printf("memory: read %.2f GB/s (parallel sum, %d MiB), memcpy %.2f GB/s (read+write)\n", rf.read_gbs, mib,
                    rf.copy_gbs);

        struct Shape {
            const char* name;
            int64_t N, K, count;
        };
        const int64_t scale = quick ? 2 : 1;
        const Shape shapes[] = {{"gdn in_proj_qkvz [12288x2048]", 12288, 2048, 8 / scale},
                                {"attn q_proj [8192x2048]", 8192, 2048, 12 / scale},
                                {"expert gate/up [512x2048]", 512, 2048, 256 / scale},
                                {"expert down [2048x512]", 2048, 512, 256 / scale}};
        std::printf("bf16 GEMV (decode, distinct weights per call, %zu MiB+ per pass):\n",
                    static_cast<size_t>(512 / scale));
        for (const Shape& s : shapes) {
            const double gbs = gemv_bandwidth(s.N, s.K, s.count, reps);
            std::printf("  %-32s %7.2f GB/s  = %5.1f%% of read roofline\n", s.name, gbs, 100.0 * gbs / rf.read_gbs);
        }

        {  // prefill GEMM: T=512 tokens through a [2048 x 2048] bf16 weight
            const int64_t T = 512, K = 2048, N = 2048;
            std::vector<uint16_t> w(static_cast<size_t>(N * K));
            fill_random_bf16(w, 11);
            std::vector<float> x(static_cast<size_t>(T * K), 0.25f), y(static_cast<size_t>(T * N));
            const double t = best_of(reps, [&] {
                matmul(Tensor::f32(x.data(), {T, K}), Tensor::view(w.data(), DType::BF16, {N, K}),
                       Tensor::f32(y.data(), {T, N}));
            });
            std::printf("bf16 GEMM T=512 [2048x2048]: %.1f GFLOP/s (%.2f ms)\n", 2.0 * T * K * N / t / 1e9, t * 1e3);
        }
        {  // GDN: 32 value heads / 16 key heads of 128, one layer
            const int64_t Hk = 16, Hv = 32, D = 128;
            for (int64_t T : {int64_t{1}, int64_t{512}}) {
                std::vector<float> q(static_cast<size_t>(T * Hk * D), 0.088f), v(static_cast<size_t>(T * Hv * D), 0.1f);
                std::vector<float> g(static_cast<size_t>(T * Hv), -0.1f), beta(static_cast<size_t>(T * Hv), 0.5f);
                std::vector<float> st(static_cast<size_t>(Hv * D * D), 0.0f), out(static_cast<size_t>(T * Hv * D));
                const Tensor Q = Tensor::f32(q.data(), {T, Hk, D}), V = Tensor::f32(v.data(), {T, Hv, D});
                const Tensor G = Tensor::f32(g.data(), {T, Hv}), B = Tensor::f32(beta.data(), {T, Hv});
                const Tensor S = Tensor::f32(st.data(), {Hv, D, D}), O = Tensor::f32(out.data(), {T, Hv, D});
                const double tr = best_of(reps, [&] { gdn_recurrent(Q, Q, V, G, B, S, O, 0.088f); });
                const double tc = best_of(reps, [&] { gdn_chunked(Q, Q, V, G, B, S, O, 0.088f); });
                std::printf("GDN layer (32x128x128 state) T=%-4lld recurrent %8.3f ms, chunked %8.3f ms\n",
                            static_cast<long long>(T), tr * 1e3, tc * 1e3);
            }
        }
        {  // attention decode: 16 q heads, 2 kv heads of 256, f32 cache
            const int64_t Hq = 16, Hkv = 2, D = 256;
            for (int64_t ctx : {int64_t{128}, int64_t{4096}}) {
                std::vector<float> kc(static_cast<size_t>(ctx * Hkv * D), 0.01f), q(static_cast<size_t>(Hq * D), 0.1f);
                std::vector<float> out(static_cast<size_t>(Hq * D));
                const Tensor K = Tensor::f32(kc.data(), {ctx, Hkv, D});
                const double t = best_of(reps, [&] {
                    attention(Tensor::f32(q.data(), {1, Hq, D}), K, K, ctx - 1, 0.0625f, Tensor{},
                              Tensor::f32(out.data(), {1, Hq, D}));
                });
                std::printf("attention decode ctx=%-5lld %8.3f ms (KV read %.2f GB/s)\n", static_cast<long long>(ctx),
                            t * 1e3, 2.0 * static_cast<double>(kc.size() * 4) / t / 1e9);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_kernels: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
