#include "agent/bench_agent.h"

#include <cstdio>
#include <memory>
#include <random>

#include <boost/asio/io_context.hpp>

#include "agent/inprocess_backend.h"
#include "agent/runtime.h"
#include "model/chat_template.h"
#include "model/engine.h"
#include "model/model_folder.h"
#include "model/model_info.h"
#include "model/qwen3_next.h"
#include "model/tokenizer.h"

namespace qnext::agent {

namespace {

// A user message of about `tokens` tokens of plain English-like text (deterministic).
std::string filler(const Tokenizer& tok, int64_t tokens, uint64_t seed) {
    static const char* words[] = {"the", "agent", "reads", "a", "file", "and", "computes", "numbers", "with",
                                  "python", "then", "writes", "results", "to", "disk", "quickly", "every", "step"};
    std::mt19937_64 rng(seed);
    std::string s;
    while (static_cast<int64_t>(tok.encode(s).size()) < tokens) {
        for (int i = 0; i < 32; ++i) {
            s += words[rng() % (sizeof(words) / sizeof(words[0]))];
            s += ' ';
        }
    }
    return s;
}

// Arithmetic of a prefill of n tokens after p cached ones: 2 FLOPs per active weight per token (the lm_head only
// for the last token) plus scores and weighted sums over every visible key in each full-attention layer. The ratio
// of two such counts is the TTFT ratio a machine running every op at one speed would show: the physical floor
// (attention over a long history is real work that reuse cannot skip).
double prefill_flops(const Qwen3NextConfig& c, const ModelInfo& mi, int64_t n, int64_t p) {
    const double lm_head = static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
    const double weights = 2.0 * ((static_cast<double>(mi.active_params_per_token) - lm_head) * static_cast<double>(n) + lm_head);
    const double keys = static_cast<double>(n) * static_cast<double>(p) + static_cast<double>(n) * static_cast<double>(n + 1) / 2;
    return weights + 4.0 * static_cast<double>(mi.full_attention_layers * c.num_attention_heads * c.head_dim) * keys;
}

GenerationResult generate(boost::asio::io_context& io, Backend& b, const GenerationRequest& req) {
    GenerationResult out;
    bool done = false;
    b.async_generate(req, [](const GenerationEvent&) {}, [&](GenerationResult r) {
        out = std::move(r);
        done = true;
    });
    io.restart();
    while (!done && io.run_one() > 0) {
    }
    if (out.finish == FinishReason::Error) throw std::runtime_error("bench agent: " + out.error);
    return out;
}

}  // namespace

int run_agent_bench(const AgentBenchOptions& o) {
    boost::asio::io_context io;
    RuntimeOptions ro;
    ro.model_dir = o.model_dir;
    ro.quiet = o.quiet;
    ro.max_context = o.history_tokens + 2 * o.turn_tokens + 256;
    if (!ro.model_dir) ro.model_dir = default_model_dir();
    Runtime runtime(io, ro);
    auto reuse = runtime.make_backend(false);
    auto full = runtime.make_backend(false);
    auto fresh = runtime.make_backend(false);
    dynamic_cast<InProcessBackend&>(*full).set_reuse(false);
    auto& fresh_b = dynamic_cast<InProcessBackend&>(*fresh);
    const Tokenizer tok = Tokenizer::load(*runtime.options().model_dir);   // a folder or a GGUF file
    const Qwen3NextConfig cfg = runtime.model_config();
    const ModelInfo info = compute_model_info(cfg);

    std::printf("# qnext bench agent: %s\n", runtime.describe().c_str());
    std::printf("# TTFT of turn N (prefill of the conversation + first token), greedy, %lld new user tokens/turn\n",
                static_cast<long long>(o.turn_tokens));
    std::printf("%5s %9s %9s %9s %12s %12s %12s %8s %8s\n", "turn", "history", "reused", "new", "reuse_ms", "no_reuse_ms",
                "fresh_ms", "ratio", "floor");
    GenerationRequest req;
    req.max_tokens = o.answer_tokens;
    req.tool_choice = "none";
    ojson messages = ojson::array();
    double worst = 0, worst_floor = 0;
    for (int turn = 1;; ++turn) {
        std::string user = filler(tok, o.turn_tokens, static_cast<uint64_t>(turn));
        messages.push_back(ojson{{"role", "user"}, {"content", user}});
        req.messages = messages;
        GenerationResult r = generate(io, *reuse, req);
        GenerationResult n;
        if (o.no_reuse_baseline) n = generate(io, *full, req);
        // The fresh prompt: only this turn's message, on an empty state.
        GenerationRequest only = req;
        only.messages = ojson::array({messages.back()});
        fresh_b.forget();
        GenerationResult f = generate(io, *fresh, only);
        double ratio = f.stats.ttft_ms > 0 ? r.stats.ttft_ms / f.stats.ttft_ms : 0;
        const double floor = prefill_flops(cfg, info, r.stats.prefill_tokens, r.stats.reused_tokens) /
                             prefill_flops(cfg, info, f.stats.prefill_tokens, 0);
        if (turn > 1) {
            worst = std::max(worst, ratio);
            worst_floor = std::max(worst_floor, floor);
        }
        std::printf("%5d %9lld %9lld %9lld %12.1f %12.1f %12.1f %8.2f %8.2f\n", turn,
                    static_cast<long long>(r.stats.prompt_tokens), static_cast<long long>(r.stats.reused_tokens),
                    static_cast<long long>(r.stats.prefill_tokens), r.stats.ttft_ms, n.stats.ttft_ms, f.stats.ttft_ms,
                    ratio, floor);
        std::fflush(stdout);
        messages.push_back(ojson{{"role", "assistant"}, {"content", r.content}});
        if (r.stats.prompt_tokens + o.turn_tokens + o.answer_tokens + 64 > o.history_tokens) break;
    }
    std::printf("# worst TTFT(turn N, reuse) / TTFT(fresh prompt of the same new tokens) over turns >= 2: %.2f "
                "(goal <= 1.1)\n# floor: the same ratio in FLOPs (active weights + attention over the history), worst %.2f\n",
                worst, worst_floor);
    return 0;
}

}  // namespace qnext::agent
