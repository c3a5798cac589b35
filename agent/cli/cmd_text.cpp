// `qnext tokenize`, `qnext detokenize`, `qnext render` and `qnext bench tokenize`.
#include <chrono>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "common/json_limits.h"
#include "model/chat_encode.h"
#include "model/tokenizer.h"

namespace qnext::cli {
namespace {

using ordered_json = nlohmann::ordered_json;

std::string read_stdin() {
    std::ios::sync_with_stdio(false);
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void write_stdout(const std::string& s) {
    if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) throw std::runtime_error("cannot write to stdout");
}

// Calls fn(line, line_number) for each non-empty stdin line (a trailing '\r' is dropped).
template <class Fn>
void for_each_line(Fn&& fn) {
    std::string line;
    size_t number = 0;
    while (std::getline(std::cin, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        fn(line, number);
    }
}

template <class J = nlohmann::json>
J parse_json(const std::string& text, const std::string& what) {
    try {
        return parse_json_limited<J>(text);
    } catch (const std::exception& e) {
        throw std::runtime_error("invalid JSON in " + what + ": " + e.what());
    }
}

std::vector<int32_t> parse_ids(const nlohmann::json& j, const std::string& what) {
    if (!j.is_array()) throw std::runtime_error(what + ": expected a JSON array of token ids");
    std::vector<int32_t> ids;
    ids.reserve(j.size());
    for (const auto& x : j) {
        if (!x.is_number_integer())
            throw std::runtime_error(what + ": token ids must be integers, got " + x.dump().substr(0, 100));
        const auto v = x.get<int64_t>();
        if ((x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(INT32_MAX)) || v < INT32_MIN || v > INT32_MAX) throw std::runtime_error(what + ": token id " + x.dump() + " is out of range");
        ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
}

struct TextOptions {
    std::string tokenizer;
    std::string template_name;
    bool jsonl = false;
    bool no_special = false;
    bool skip_special = false;
    bool ids = false;
};

void run_tokenize(const TextOptions& o) {
    const auto tok = Tokenizer::load(o.tokenizer);
    if (!o.jsonl) {
        write_stdout(nlohmann::json(tok.encode(read_stdin(), !o.no_special)).dump() + "\n");
        return;
    }
    std::string out;
    for_each_line([&](const std::string& line, size_t n) {
        const auto j = parse_json(line, "stdin line " + std::to_string(n));
        if (!j.is_string()) throw std::runtime_error("stdin line " + std::to_string(n) + ": expected a JSON string");
        out += nlohmann::json(tok.encode(j.get_ref<const std::string&>(), !o.no_special)).dump();
        out += '\n';
    });
    write_stdout(out);
}

void run_detokenize(const TextOptions& o) {
    const auto tok = Tokenizer::load(o.tokenizer);
    if (!o.jsonl) {
        write_stdout(tok.decode(parse_ids(parse_json(read_stdin(), "stdin"), "stdin"), o.skip_special));
        return;
    }
    std::string out;
    for_each_line([&](const std::string& line, size_t n) {
        const std::string what = "stdin line " + std::to_string(n);
        out += nlohmann::json(tok.decode(parse_ids(parse_json(line, what), what), o.skip_special)).dump();
        out += '\n';
    });
    write_stdout(out);
}

void run_render(const TextOptions& o) {
    std::optional<TemplateKind> override_kind;
    if (!o.template_name.empty()) override_kind = parse_template_name(o.template_name);
    if (o.tokenizer.empty() && !override_kind)
        throw std::runtime_error("render needs --tokenizer DIR (to detect the chat template) or --template instruct|thinking|hybrid|qwen35");
    if (o.ids && o.tokenizer.empty()) throw std::runtime_error("render --ids needs --tokenizer DIR|F.gguf");
    const TemplateKind kind = o.tokenizer.empty() ? *override_kind : resolve_template(o.tokenizer, override_kind);
    std::optional<Tokenizer> tok;
    if (o.ids) tok = Tokenizer::load(o.tokenizer);
    // The prompt text, or with --ids its token ids (the request's strings encoded as plain text).
    auto one = [&](const ordered_json& req) -> nlohmann::json {
        if (tok) return encode_chat(*tok, kind, req);
        return render_chat(kind, req);
    };
    if (!o.jsonl) {
        const auto j = one(parse_json<ordered_json>(read_stdin(), "stdin"));
        write_stdout(j.is_string() ? j.get<std::string>() : j.dump() + "\n");
        return;
    }
    std::string out;
    for_each_line([&](const std::string& line, size_t n) {
        const std::string what = "stdin line " + std::to_string(n);
        try {
            out += one(parse_json<ordered_json>(line, what)).dump();
        } catch (const TemplateError& e) {
            throw std::runtime_error(what + ": " + e.what());
        }
        out += '\n';
    });
    write_stdout(out);
}

// CPU time of this process in seconds (robust to other load on a shared machine).
double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Encode throughput on a file, single thread: prints one JSON line with the measurements
// (wall-clock and CPU-time based; the best of `repeat` passes).
void run_bench(const TextOptions& o, const std::string& input, int repeat) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const double c0 = cpu_seconds();
    const auto tok = Tokenizer::load(o.tokenizer);
    const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    const double load_cpu_ms = (cpu_seconds() - c0) * 1e3;
    std::ifstream in(input, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read --input " + input);
    std::vector<std::string> lines;
    size_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
        bytes += line.size() + 1;
        lines.push_back(line + "\n");
    }
    double best_s = 1e30, best_cpu_s = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
        const auto t1 = clock::now();
        const double c1 = cpu_seconds();
        tokens = 0;
        for (const auto& l : lines) tokens += tok.encode(l).size();
        best_s = std::min(best_s, std::chrono::duration<double>(clock::now() - t1).count());
        best_cpu_s = std::min(best_cpu_s, cpu_seconds() - c1);
    }
    const nlohmann::json j = {{"load_ms", load_ms},         {"load_cpu_ms", load_cpu_ms},
                              {"bytes", bytes},             {"lines", lines.size()},
                              {"tokens", tokens},           {"encode_s", best_s},
                              {"encode_cpu_s", best_cpu_s}, {"mb_per_s", bytes / 1e6 / best_s},
                              {"mb_per_cpu_s", bytes / 1e6 / best_cpu_s}, {"repeat", repeat}};
    write_stdout(j.dump() + "\n");
}

}  // namespace

void add_text_commands(Context& ctx) {
    auto opts = std::make_shared<TextOptions>();
    auto add_tokenizer = [&](CLI::App* c, bool required) {
        auto* opt = c->add_option("--tokenizer,--model", opts->tokenizer,
                                  "folder with tokenizer.json (a model folder works) or a llama.cpp .gguf file");
        if (required) opt->required();
    };

    auto* tk = ctx.app->add_subcommand("tokenize", "encode UTF-8 text from stdin to a JSON array of token ids");
    add_tokenizer(tk, true);
    tk->add_flag("--no-special", opts->no_special, "treat special-token text as plain text");
    tk->add_flag("--jsonl", opts->jsonl, "each stdin line is a JSON string; one id array per output line");
    tk->callback([opts] { run_tokenize(*opts); });

    auto* dt = ctx.app->add_subcommand("detokenize", "decode a JSON array of token ids from stdin to text");
    add_tokenizer(dt, true);
    dt->add_flag("--skip-special", opts->skip_special, "drop special tokens");
    dt->add_flag("--jsonl", opts->jsonl, "each stdin line is an id array; one JSON string per output line");
    dt->callback([opts] { run_detokenize(*opts); });

    auto* rd = ctx.app->add_subcommand("render", "render a chat request (JSON on stdin) with the model's chat template");
    add_tokenizer(rd, false);
    rd->add_option("--template", opts->template_name, "override the detected template")
        ->check(CLI::IsMember({"instruct", "thinking", "hybrid", "qwen35"}));
    rd->add_flag("--jsonl", opts->jsonl, "one request per stdin line; one JSON-encoded prompt per output line");
    rd->add_flag("--ids", opts->ids,
                 "print the prompt's token ids (a JSON array) instead of its text: only the template's markup "
                 "becomes special tokens, message contents and tool text are encoded as plain text");
    rd->callback([opts] { run_render(*opts); });

    if (ctx.bench) {
        auto input = std::make_shared<std::string>();
        auto repeat = std::make_shared<int>(3);
        auto* bt = ctx.bench->add_subcommand("tokenize", "tokenizer load time and encode throughput (one thread)");
        add_tokenizer(bt, true);
        bt->add_option("--input", *input, "UTF-8 text file (encoded line by line)")->required();
        bt->add_option("--repeat", *repeat, "timed passes; the best is reported")->check(CLI::PositiveNumber);
        bt->callback([opts, input, repeat] { run_bench(*opts, *input, *repeat); });
    }
}

}  // namespace qnext::cli
