// Server metrics in the Prometheus text exposition format (GET /metrics). Updated on the io thread only.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qnext::agent::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
    void observe(double v);
    void write(std::string& out, const std::string& name, const std::string& help) const;

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;   // per bucket (not cumulative)
    uint64_t count_ = 0;
    double sum_ = 0;
};

struct Metrics {
    std::map<std::pair<std::string, int>, uint64_t> requests;   // (route, status) -> count
    uint64_t prompt_tokens = 0, cached_tokens = 0, prefill_tokens = 0, generated_tokens = 0;
    uint64_t cache_hits = 0;            // chat requests that resumed from kept state (cached_tokens > 0)
    uint64_t disconnects = 0;           // generations cancelled because the client went away
    uint64_t rejected_queue_full = 0;
    Histogram ttft_seconds{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
    Histogram decode_tokens_per_second{{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000}};
    Histogram request_seconds{{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}};

    void count(const std::string& route, int status) { ++requests[{route, status}]; }
    // Gauges are sampled at render time.
    std::string render(size_t queue_depth, size_t busy_slots, size_t slots, size_t connections) const;
};

}  // namespace qnext::agent::server
