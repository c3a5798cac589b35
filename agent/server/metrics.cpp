#include "agent/server/metrics.h"

#include <cstdio>

namespace qnext::agent::server {

namespace {
std::string num(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.10g", v);
    return b;
}
void counter(std::string& out, const std::string& name, const std::string& help, uint64_t v) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
}
void gauge(std::string& out, const std::string& name, const std::string& help, uint64_t v) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + std::to_string(v) + "\n";
}
}  // namespace

void Histogram::observe(double v) {
    ++count_;
    sum_ += v;
    for (size_t i = 0; i < bounds_.size(); ++i)
        if (v <= bounds_[i]) {
            ++counts_[i];
            return;
        }
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cum += counts_[i];
        out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
    }
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
    out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

std::string Metrics::render(size_t queue_depth, size_t busy_slots, size_t slots, size_t connections) const {
    std::string out;
    out += "# HELP qnext_requests_total HTTP requests by route and status.\n# TYPE qnext_requests_total counter\n";
    for (const auto& [key, n] : requests)
        out += "qnext_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
               std::to_string(n) + "\n";
    counter(out, "qnext_prompt_tokens_total", "Prompt tokens of chat requests.", prompt_tokens);
    counter(out, "qnext_cached_prompt_tokens_total", "Prompt tokens served from kept state (not recomputed).",
            cached_tokens);
    counter(out, "qnext_prefill_tokens_total", "Prompt tokens computed.", prefill_tokens);
    counter(out, "qnext_generated_tokens_total", "Generated tokens.", generated_tokens);
    counter(out, "qnext_cache_hits_total", "Chat requests that resumed from kept state.", cache_hits);
    counter(out, "qnext_client_disconnects_total", "Generations cancelled because the client went away.", disconnects);
    counter(out, "qnext_rejected_queue_full_total", "Requests refused with 429 because the queue was full.",
            rejected_queue_full);
    gauge(out, "qnext_queue_depth", "Requests waiting for a slot.", queue_depth);
    gauge(out, "qnext_busy_slots", "Slots generating now.", busy_slots);
    gauge(out, "qnext_slots", "Slots (--parallel).", slots);
    gauge(out, "qnext_open_connections", "Open HTTP connections.", connections);
    ttft_seconds.write(out, "qnext_ttft_seconds", "Time from a request's arrival to its first generated token.");
    decode_tokens_per_second.write(out, "qnext_decode_tokens_per_second", "Decode speed of each request.");
    request_seconds.write(out, "qnext_request_seconds", "Chat request duration.");
    return out;
}

}  // namespace qnext::agent::server
