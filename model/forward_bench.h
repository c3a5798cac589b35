// Speed baseline for the forward pass (`qnext bench --model DIR | --config FILE`): prefill tok/s,
// decode tok/s at given contexts, and the decode weight-read bandwidth next to this machine's read
// bandwidth measured in the same run (the memory roofline for batch-1 decode). On a shared, noisy
// machine the probe is repeated right before and after each decode measurement and the ratio uses
// the mean of those two, so both sides of the ratio see the same background load.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/qwen3_next.h"

namespace qnext {

struct ForwardBenchOptions {
    int64_t prefill_tokens = 512;
    std::vector<int64_t> decode_contexts{128, 4096};
    int decode_steps = 16;            // timed decode steps per context (after 2 warm-up steps)
    int repeats = 3;                  // best of N for prefill and bandwidth
    uint64_t bandwidth_bytes = 512ull << 20;  // buffer streamed by the read-bandwidth probe
    uint64_t seed = 1;
};

struct DecodeResult {
    int64_t context = 0;              // tokens already in the state when decoding starts
    bool context_prefilled = false;   // true: filled by a real prefill; false: KV rows left as zeros
    double ms_per_token = 0;
    double tokens_per_s = 0;
    double weight_gb_per_s = 0;       // active weight bytes per token / time per token
    double read_bandwidth_gb_s = 0;   // measured right before and after this decode run (mean)
    double roofline_fraction = 0;     // weight_gb_per_s / read_bandwidth_gb_s
};

struct ForwardBenchResult {
    int threads = 0;
    double read_bandwidth_gb_s = 0;   // at the start, best of `repeats`
    uint64_t active_bytes_per_token = 0;
    int64_t prefill_tokens = 0;
    double prefill_tokens_per_s = 0;
    std::vector<DecodeResult> decode;
};

// Streams `bytes` of memory with all OpenMP threads (after touching it once) and returns GB/s
// (1e9 bytes per second), best of `repeats`.
double measure_read_bandwidth(uint64_t bytes, int repeats);

// Runs the benchmark; `log` receives progress lines. Uses kern::num_threads() threads.
ForwardBenchResult run_forward_bench(const Qwen3NextModel& model, const ForwardBenchOptions& opts,
                                     const std::function<void(const std::string&)>& log);

}  // namespace qnext
