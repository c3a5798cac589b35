// `qnext bench agent`: time to first token of turn N of a growing conversation, with state reuse on and off,
// against a fresh prompt holding only turn N's new tokens. Reuse makes a turn cost what its new tokens cost:
// the goal is TTFT(turn N, reuse) / TTFT(fresh prompt of the same new tokens) <= 1.1 up to 8k tokens of history.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>

namespace qnext::agent {

struct AgentBenchOptions {
    std::optional<std::filesystem::path> model_dir;  // default: the demo model
    int64_t history_tokens = 8192;                   // grow the conversation to about this many tokens
    int64_t turn_tokens = 512;                       // new user tokens per turn
    int answer_tokens = 8;                           // generated tokens per turn
    bool no_reuse_baseline = true;                   // also time every turn re-prefilled from scratch
    bool quiet = false;
};

int run_agent_bench(const AgentBenchOptions& options);

}  // namespace qnext::agent
