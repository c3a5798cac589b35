// `qnext serve`: the OpenAI-compatible HTTP server (agent/server/).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "agent/cli/commands.h"
#include "agent/inprocess_backend.h"
#include "agent/runtime.h"
#include "agent/server/http_server.h"
#include "common/json_limits.h"
#include "model/tokenizer.h"

namespace qnext::cli {

namespace fs = std::filesystem;
using agent::ojson;

namespace {

struct ServeFlags {
    std::string model, model_name, host = "127.0.0.1", api_key, template_name;
    int port = 8080;
    int parallel = 2;
    int64_t context = 0;
    size_t queue = 64;
    double max_body_mb = 16;
    int max_tokens_cap = 0;
    size_t max_connections = 256;
};

// Sampling defaults from the model folder's generation_config.json (what vLLM does), else OpenAI's defaults.
agent::SamplingParams generation_defaults(const fs::path& model) {
    agent::SamplingParams s;
    s.temperature = 1.0;
    fs::path f = model / "generation_config.json";
    if (!fs::is_directory(model) || !fs::exists(f)) return s;
    std::ifstream in(f);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ojson g;
    try {
        g = parse_json_limited<ojson>(text);
    } catch (const std::exception& e) {
        throw std::runtime_error(f.string() + ": " + e.what());
    }
    auto num = [&](const char* k, double& out) {
        if (g.contains(k) && g[k].is_number()) out = g[k].get<double>();
    };
    num("temperature", s.temperature);
    num("top_p", s.top_p);
    num("min_p", s.min_p);
    num("repetition_penalty", s.repetition_penalty);
    if (g.contains("top_k") && g["top_k"].is_number_integer()) s.top_k = std::max(0, g["top_k"].get<int>());
    if (g.contains("do_sample") && g["do_sample"] == false) s.temperature = 0;
    return s;
}

void serve(const ServeFlags& f, bool quiet) {
    boost::asio::io_context io;
    agent::RuntimeOptions ro;
    if (!f.model.empty()) ro.model_dir = f.model;
    if (!f.template_name.empty()) ro.template_override = f.template_name;
    ro.max_context = f.context;
    ro.quiet = quiet;
    agent::Runtime runtime(io, ro);
    const fs::path model_path = *runtime.options().model_dir;

    agent::server::ServeDefaults d;
    d.model_name = !f.model_name.empty() ? f.model_name
                   : model_path.extension() == ".gguf" ? model_path.stem().string()
                                                        : fs::weakly_canonical(model_path).filename().string();
    d.sampling = generation_defaults(model_path);
    const TemplateKind kind = runtime.serving_template();
    d.thinking = kind == TemplateKind::Thinking || kind == TemplateKind::Hybrid || kind == TemplateKind::Qwen35;
    d.thinking_fixed = kind == TemplateKind::Thinking;
    d.max_tokens_cap = f.max_tokens_cap;

    std::vector<std::unique_ptr<agent::InProcessBackend>> backends;
    for (int i = 0; i < f.parallel; ++i) backends.push_back(runtime.make_serving_backend());
    agent::server::SlotPool slots(std::move(backends), f.queue);

    agent::server::ServeOptions so;
    so.host = f.host;
    so.port = static_cast<uint16_t>(f.port);
    so.api_key = f.api_key;
    if (so.api_key.empty())
        if (const char* k = std::getenv("QNEXT_API_KEY")) so.api_key = k;
    so.max_body_bytes = static_cast<size_t>(f.max_body_mb * 1024 * 1024);
    so.max_connections = f.max_connections;
    so.context = runtime.options().max_context;
    agent::server::Server server(io, slots, runtime.tokenizer(), d, so);
    server.start();

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        std::fprintf(stderr, "qnext serve: %s, stopping (in-flight requests are cancelled)\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        server.shutdown();
    });
    std::signal(SIGPIPE, SIG_IGN);
    std::fprintf(stderr, "qnext serve: listening on http://%s:%u/v1 (model %s, %d slots of %lld tokens, template %s%s)\n",
                 f.host.c_str(), static_cast<unsigned>(server.port()), d.model_name.c_str(), f.parallel,
                 static_cast<long long>(so.context), std::string(template_name(kind)).c_str(),
                 so.api_key.empty() ? "" : ", API key required");
    std::fflush(stderr);
    io.run();
}

}  // namespace

void add_serve_commands(Context& ctx) {
    auto flags = std::make_shared<ServeFlags>();
    CLI::App* cmd = ctx.app->add_subcommand(
        "serve", "OpenAI-compatible HTTP server: /v1/chat/completions (streaming, tools, response_format), /v1/models, "
                 "/health, /metrics, /tokenize, /detokenize");
    cmd->add_option("--model", flags->model, "model folder or GGUF file (default: the demo model in models/demo)");
    cmd->add_option("--model-name", flags->model_name, "the model id clients request (default: the folder's name)");
    cmd->add_option("--host", flags->host, "address to bind (default 127.0.0.1: loopback only)");
    cmd->add_option("--port", flags->port, "port (default 8080; 0 = any free port, printed at startup)")
        ->check(CLI::Range(0, 65535));
    cmd->add_option("--api-key", flags->api_key, "require 'Authorization: Bearer KEY' (default: $QNEXT_API_KEY)");
    cmd->add_option("--parallel", flags->parallel,
                    "slots: conversations generating at once, each with its own kept state (default 2)")
        ->check(CLI::Range(1, 256));
    cmd->add_option("--ctx", flags->context, "tokens of context per slot (default: min(8192, max_position_embeddings))")
        ->check(CLI::Range(int64_t{16}, int64_t{1} << 24));
    cmd->add_option("--queue", flags->queue, "requests that may wait for a slot; more get 429 (default 64)")
        ->check(CLI::Range(size_t{0}, size_t{1} << 20));
    cmd->add_option("--max-body-mb", flags->max_body_mb, "largest request body; larger get 413 (default 16)")
        ->check(CLI::Range(0.001, 4096.0));
    cmd->add_option("--max-tokens", flags->max_tokens_cap,
                    "most tokens a request may generate (default: the rest of the slot's context)")
        ->check(CLI::Range(1, 1 << 30));
    cmd->add_option("--max-connections", flags->max_connections, "open connections; more get 503 (default 256)")
        ->check(CLI::Range(size_t{1}, size_t{1} << 20));
    cmd->add_option("--template", flags->template_name, "override the chat template: instruct|thinking|hybrid|qwen35")
        ->check(CLI::IsMember({"instruct", "thinking", "hybrid", "qwen35"}));
    cmd->callback([flags, &ctx] { serve(*flags, ctx.quiet); });
}

}  // namespace qnext::cli
