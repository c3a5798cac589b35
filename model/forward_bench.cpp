#include "model/forward_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "kernels/backend.h"

namespace qnext {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, std::mt19937_64& rng) {
    std::vector<int32_t> ids(n);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
    return ids;
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, a, b, c);
    return buf;
}

}  // namespace

double measure_read_bandwidth(uint64_t bytes, int repeats) {
    const size_t n = bytes / sizeof(uint64_t);
    std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) buf[i] = i;  // first touch by the threads that will read it
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < repeats; ++r) {
        uint64_t acc = 0;
        const auto t0 = Clock::now();
#pragma omp parallel for schedule(static) reduction(+ : acc)
        for (size_t i = 0; i < n; ++i) acc += buf[i];
        const double s = seconds_since(t0);
        sink = sink + acc;
        best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
    }
    return best;
}

ForwardBenchResult run_forward_bench(const Qwen3NextModel& model, const ForwardBenchOptions& o,
                                     const std::function<void(const std::string&)>& log) {
    ForwardBenchResult r;
    r.threads = kern::num_threads();
    r.active_bytes_per_token = model.active_weight_bytes_per_token();
    std::mt19937_64 rng(o.seed);
    const int64_t vocab = model.vocab_size();

    log(fmt("measuring read bandwidth (%.0f MiB buffer)...", o.bandwidth_bytes / 1048576.0));
    r.read_bandwidth_gb_s = measure_read_bandwidth(o.bandwidth_bytes, o.repeats);
    log(fmt("read bandwidth: %.2f GB/s", r.read_bandwidth_gb_s));

    // Prefill: best of `repeats` fresh sequences of prefill_tokens.
    r.prefill_tokens = o.prefill_tokens;
    const auto prompt = random_ids(o.prefill_tokens, vocab, rng);
    double best_prefill = 1e300, spent = 0;
    for (int i = 0; i < o.repeats && spent < 30.0; ++i) {  // stop repeating once 30 s are spent
        SequenceState st = model.new_state(o.prefill_tokens);
        const auto t0 = Clock::now();
        model.forward(st, prompt);
        best_prefill = std::min(best_prefill, seconds_since(t0));
        spent += seconds_since(t0);
        log(fmt("prefill %.0f tokens: %.3f s", static_cast<double>(o.prefill_tokens), seconds_since(t0)));
    }
    r.prefill_tokens_per_s = o.prefill_tokens / best_prefill;

    for (int64_t ctx : o.decode_contexts) {
        DecodeResult d;
        d.context = ctx;
        const int warmup = 2;
        SequenceState st = model.new_state(ctx + warmup + o.decode_steps);
        // A real prefill when it takes under ~60 s at the measured rate, else zero-filled KV rows
        // (decode cost depends on the context length, not on the values in the cache).
        d.context_prefilled = ctx / r.prefill_tokens_per_s < 60.0;
        if (d.context_prefilled) {
            model.forward(st, random_ids(ctx, vocab, rng));
        } else {
            st.skip_to_for_benchmark(ctx);
        }
        int32_t tok = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
        for (int i = 0; i < warmup; ++i) model.forward(st, std::span<const int32_t>(&tok, 1));
        const double bw_before = measure_read_bandwidth(o.bandwidth_bytes, o.repeats);
        const auto t0 = Clock::now();
        for (int i = 0; i < o.decode_steps; ++i) {
            Logits l = model.forward(st, std::span<const int32_t>(&tok, 1));
            tok = static_cast<int32_t>(std::max_element(l.data.begin(), l.data.end()) - l.data.begin());
        }
        const double per = seconds_since(t0) / o.decode_steps;
        const double bw_after = measure_read_bandwidth(o.bandwidth_bytes, o.repeats);
        d.ms_per_token = per * 1e3;
        d.tokens_per_s = 1.0 / per;
        d.weight_gb_per_s = static_cast<double>(r.active_bytes_per_token) / per / 1e9;
        d.read_bandwidth_gb_s = 0.5 * (bw_before + bw_after);
        d.roofline_fraction = d.weight_gb_per_s / d.read_bandwidth_gb_s;
        log(fmt("decode at context %.0f: %.2f ms/token (read bandwidth around it: %.2f GB/s)",
                static_cast<double>(ctx), d.ms_per_token, d.read_bandwidth_gb_s));
        r.decode.push_back(d);
    }
    return r;
}

}  // namespace qnext
