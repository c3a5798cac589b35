// benchmarks/kernels/bench_kernels.cpp: kernel micro-benchmarks on the real Qwen3-Next-80B shapes.
// Measures this machine's memory read bandwidth (parallel sum over a buffer far larger than the
// caches) and memcpy bandwidth, then the achieved weight-read bandwidth of bf16 GEMV (decode) with
// distinct weights per call so nothing is served from cache, printed as % of the read roofline; plus
// bf16 GEMM (prefill) GFLOP/s, GDN recurrent/chunked and attention-decode timings.
// Usage: bench_kernels [--threads N] [--mib SIZE] [--backend cpu|ref] [--quick]
#include <immintrin.h>
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

// Streaming read of `n` floats with 4 independent AVX2 accumulators per thread (the read roofline).
__attribute__((target("avx2,fma"))) float sum_avx2(const float* a, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    float r = 0;
    for (float l : lanes) r += l;
    for (; i < n; ++i) r += a[i];
    return r;
}

// Seconds for one parallel read pass over a (each thread a contiguous slice).
double read_pass(const std::vector<float>& a) {
    float total = 0;
    const auto t0 = Clock::now();
#pragma omp parallel reduction(+ : total)
    {
        const size_t nth = static_cast<size_t>(omp_get_num_threads()), tid = static_cast<size_t>(omp_get_thread_num());
        const size_t per = (a.size() + nth - 1) / nth, i0 = std::min(a.size(), tid * per);
        total += sum_avx2(a.data() + i0, std::min(a.size(), i0 + per) - i0);
    }
    const double t = seconds_since(t0);
    if (std::isnan(total)) std::printf("(nan)\n");  // keeps the sum observable
    return t;
}

double copy_pass(const std::vector<float>& a, std::vector<float>& b) {
    const auto t0 = Clock::now();
#pragma omp parallel
    {
        const size_t n = a.size();
        const size_t nth = static_cast<size_t>(omp_get_num_threads()), tid = static_cast<size_t>(omp_get_thread_num());
        const size_t per = (n + nth - 1) / nth, i0 = std::min(n, tid * per), i1 = std::min(n, i0 + per);
        std::memcpy(b.data() + i0, a.data() + i0, (i1 - i0) * sizeof(float));
    }
    return seconds_since(t0);
}

// GEMV y = W x over `count` distinct [N, K] bf16 matrices (total > caches).
struct GemvSet {
    int64_t N, K, count;
    std::vector<uint16_t> w;
    std::vector<float> x, y;
    GemvSet(int64_t n, int64_t k, int64_t c)
        : N(n), K(k), count(c), w(static_cast<size_t>(n * k * c)), x(static_cast<size_t>(k), 0.5f), y(static_cast<size_t>(n)) {
        fill_random_bf16(w, 7);
    }
    double pass() {  // seconds for one pass over all matrices
        const Tensor xt = Tensor::f32(x.data(), {1, K}), yt = Tensor::f32(y.data(), {1, N});
        const auto t0 = Clock::now();
        for (int64_t m = 0; m < count; ++m) matmul(xt, Tensor::view(w.data() + m * N * K, DType::BF16, {N, K}), yt);
        return seconds_since(t0);
    }
    double bytes() const { return static_cast<double>(w.size() * 2); }
};

// The same over block-quantized weights (GGUF types): random blocks with small positive f16 scales.
struct QGemvSet {
    int64_t N, K, count;
    DType type;
    std::vector<uint8_t> w;
    std::vector<float> x, y;
    QGemvSet(int64_t n, int64_t k, int64_t c, DType t)
        : N(n), K(k), count(c), type(t), w(dtype_bytes(t, n * k * c)), x(static_cast<size_t>(k), 0.5f),
          y(static_cast<size_t>(n)) {
        std::mt19937_64 gen(3);
        for (size_t i = 0; i + 8 <= w.size(); i += 8) {
            const uint64_t v = gen();
            std::memcpy(w.data() + i, &v, 8);
        }
        std::vector<int> scale_offsets;
        switch (t) {
            case DType::Q2_K: scale_offsets = {80, 82}; break;
            case DType::Q3_K: scale_offsets = {108}; break;
            case DType::Q6_K: scale_offsets = {208}; break;
            case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: scale_offsets = {0, 2}; break;
            default: scale_offsets = {0}; break;
        }
        const size_t bb = dtype_block_bytes(t);
        for (size_t b = 0; b < w.size(); b += bb)
            for (int o : scale_offsets) {
                w[b + static_cast<size_t>(o)] = 0x00;
                w[b + static_cast<size_t>(o) + 1] = 0x20;   // f16 0x2000 = 2^-7
            }
    }
    double pass() {
        const Tensor xt = Tensor::f32(x.data(), {1, K}), yt = Tensor::f32(y.data(), {1, N});
        const size_t mat = dtype_bytes(type, N * K);
        const auto t0 = Clock::now();
        for (int64_t m = 0; m < count; ++m) matmul(xt, Tensor::view(w.data() + static_cast<size_t>(m) * mat, type, {N, K}), yt);
        return seconds_since(t0);
    }
    double bytes() const { return static_cast<double>(w.size()); }
};

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

        // Read roofline and GEMV passes interleaved round by round (best of each), so that both see the
        // same machine conditions (this machine is shared with other jobs).
        const size_t n = (static_cast<size_t>(mib) << 20) / sizeof(float);
        std::vector<float> a(n), b(n);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; ++i) a[i] = b[i] = static_cast<float>(i & 1023);
        struct Shape {
            const char* name;
            int64_t N, K, count;
        };
        const int64_t div = quick ? 2 : 1;
        const Shape shapes[] = {{"gdn in_proj_qkvz [12288x2048]", 12288, 2048, 8 / div},
                                {"attn q_proj [8192x2048]", 8192, 2048, 12 / div},
                                {"expert gate/up [512x2048]", 512, 2048, 256 / div},
                                {"expert down [2048x512]", 2048, 512, 256 / div}};
        std::vector<GemvSet> sets;
        for (const Shape& s : shapes) sets.emplace_back(s.N, s.K, s.count);
        double t_read = 1e30, t_copy = 1e30;
        std::vector<double> t_gemv(sets.size(), 1e30);
        for (int r = 0; r < reps; ++r) {
            t_read = std::min(t_read, read_pass(a));
            t_copy = std::min(t_copy, copy_pass(a, b));
            for (size_t i = 0; i < sets.size(); ++i) t_gemv[i] = std::min(t_gemv[i], sets[i].pass());
        }
        const double read_gbs = static_cast<double>(n * 4) / t_read / 1e9;
        std::printf("memory: read %.2f GB/s (AVX2 streaming sum, %d MiB), memcpy %.2f GB/s (read+write)\n", read_gbs,
                    mib, 2.0 * static_cast<double>(n * 4) / t_copy / 1e9);
        std::printf("bf16 GEMV (decode; distinct weights per call, >= 256 MiB per pass; best of %d rounds):\n", reps);
        for (size_t i = 0; i < sets.size(); ++i) {
            const double gbs = sets[i].bytes() / t_gemv[i] / 1e9;
            std::printf("  %-32s %7.2f GB/s  = %5.1f%% of read roofline\n", shapes[i].name, gbs, 100.0 * gbs / read_gbs);
        }
        sets.clear();

        // Quantized GEMV (the GGUF decode path): expert gate/up [512x2048] and in_proj [12288x2048], >= 256 MiB.
        {
            std::printf("quantized GEMV (decode; activations rounded to int8 per 32, integer dots; best of %d):\n", reps);
            for (DType t : {DType::Q8_0, DType::Q6_K, DType::Q5_K, DType::Q4_K, DType::Q4_0, DType::F8_B128}) {
                const double bpw = static_cast<double>(dtype_block_bytes(t)) / static_cast<double>(dtype_block_elems(t));
                const int64_t count_e = static_cast<int64_t>(256.0 * 1048576 / (512.0 * 2048 * bpw)) / div;
                const int64_t count_p = static_cast<int64_t>(256.0 * 1048576 / (12288.0 * 2048 * bpw)) / div + 1;
                QGemvSet e(512, 2048, count_e, t), pj(12288, 2048, count_p, t);
                double te = 1e30, tp = 1e30, tr = 1e30;
                for (int r = 0; r < reps; ++r) {
                    tr = std::min(tr, read_pass(a));
                    te = std::min(te, e.pass());
                    tp = std::min(tp, pj.pass());
                }
                const double rd = static_cast<double>(n * 4) / tr / 1e9, ge = e.bytes() / te / 1e9, gp = pj.bytes() / tp / 1e9;
                std::printf("  %-5s expert [512x2048] %6.2f GB/s = %5.1f%%, in_proj [12288x2048] %6.2f GB/s = %5.1f%% of read "
                            "(%.2f GB/s); %.1f / %.1f Gweights/s\n",
                            dtype_name(t), ge, 100 * ge / rd, gp, 100 * gp / rd, rd, ge / bpw, gp / bpw);
            }
        }
        {   // MoE block decode (T=1): 64 experts [512 x 2048] top-10 + shared expert, quantized, fresh layers
            const int64_t E = 64, D = 2048, F = 512, layers = 8 / div;
            for (DType t : {DType::Q8_0, DType::Q4_K}) {
                std::vector<QGemvSet> mats;   // per layer: 3 * (E + 1) matrices
                std::vector<std::vector<FfnWeights>> experts(static_cast<size_t>(layers));
                std::vector<float> router(static_cast<size_t>(E * D)), sg(static_cast<size_t>(D), 0.01f);
                std::mt19937 gen(5);
                std::normal_distribution<float> nd(0.0f, 1.0f);
                for (float& v : router) v = nd(gen);
                mats.reserve(static_cast<size_t>(layers * 2));
                for (int64_t l = 0; l < layers; ++l) {
                    mats.emplace_back(F, D, 2 * (E + 1), t);   // gate, up of every expert (+ shared)
                    mats.emplace_back(D, F, E + 1, t);         // down
                }
                const size_t gu = dtype_bytes(t, F * D), dn = dtype_bytes(t, D * F);
                for (int64_t l = 0; l < layers; ++l)
                    for (int64_t e = 0; e <= E; ++e) {
                        const uint8_t* g = mats[static_cast<size_t>(2 * l)].w.data();
                        const uint8_t* d = mats[static_cast<size_t>(2 * l + 1)].w.data();
                        experts[static_cast<size_t>(l)].push_back(
                            {Tensor::view(g + static_cast<size_t>(2 * e) * gu, t, {F, D}),
                             Tensor::view(g + static_cast<size_t>(2 * e + 1) * gu, t, {F, D}),
                             Tensor::view(d + static_cast<size_t>(e) * dn, t, {D, F})});
                    }
                std::vector<float> x(static_cast<size_t>(D)), out(static_cast<size_t>(D));
                for (float& v : x) v = nd(gen);
                const double tm = best_of(reps, [&] {
                    for (int64_t l = 0; l < layers; ++l) {
                        MoeBlockWeights w;
                        w.router = Tensor::f32(router.data(), {E, D});
                        w.experts = std::span<const FfnWeights>(experts[static_cast<size_t>(l)].data(), static_cast<size_t>(E));
                        w.shared = experts[static_cast<size_t>(l)][static_cast<size_t>(E)];
                        w.shared_gate = Tensor::f32(sg.data(), {1, D});
                        w.top_k = 10;
                        moe_block(Tensor::f32(x.data(), {1, D}), w, Tensor::f32(out.data(), {1, D}));
                    }
                }) / static_cast<double>(layers);
                const double bytes = 11.0 * static_cast<double>(2 * gu + dn) + static_cast<double>(E * D * 4);
                std::printf("%s MoE block decode [64 x 512x2048, top-10 + shared]: %.3f ms/layer, %.2f GB/s of its %.1f MB\n",
                            dtype_name(t), tm * 1e3, bytes / tm / 1e9, bytes / 1e6);
            }
        }
        {   // quantized prefill GEMM: T=512 through [2048 x 2048]
            const int64_t T = 512, K = 2048, N = 2048;
            std::vector<float> x(static_cast<size_t>(T * K), 0.25f), y(static_cast<size_t>(T * N));
            for (DType t : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
                QGemvSet w(N, K, 1, t);
                const double tm = best_of(reps, [&] {
                    matmul(Tensor::f32(x.data(), {T, K}), Tensor::view(w.w.data(), t, {N, K}), Tensor::f32(y.data(), {T, N}));
                });
                std::printf("%s GEMM T=512 [2048x2048]: %.1f GOP/s (%.2f ms)\n", dtype_name(t), 2.0 * T * K * N / tm / 1e9,
                            tm * 1e3);
            }
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
        {  // attention prefill: 512 new tokens after a history, same shapes (the TTFT of a later agent turn)
            const int64_t Hq = 16, Hkv = 2, D = 256, T = 512;
            for (int64_t past : {int64_t{0}, int64_t{3072}}) {
                const int64_t ctx = past + T;
                std::vector<float> kc(static_cast<size_t>(ctx * Hkv * D), 0.01f), q(static_cast<size_t>(T * Hq * D), 0.1f);
                std::vector<float> out(static_cast<size_t>(T * Hq * D));
                const Tensor K = Tensor::f32(kc.data(), {ctx, Hkv, D});
                const double t = best_of(reps, [&] {
                    attention(Tensor::f32(q.data(), {T, Hq, D}), K, K, past, 0.0625f, Tensor{},
                              Tensor::f32(out.data(), {T, Hq, D}));
                });
                const double flops = 4.0 * static_cast<double>(Hq * D) * static_cast<double>(T) *
                                     (static_cast<double>(past) + static_cast<double>(T + 1) / 2.0);
                std::printf("attention prefill T=%lld past=%-5lld %8.3f ms (%.1f GFLOP/s)\n", static_cast<long long>(T),
                            static_cast<long long>(past), t * 1e3, flops / t / 1e9);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_kernels: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
