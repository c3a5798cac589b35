// `qnext bench constrain`: grammar compile time and per-token mask time on the real tokenizer over
// the schema set, side by side with xgrammar (tests/reference/constrain_bench_xgrammar.py replays the
// very token sequences sampled here, same schemas and vocabulary, in the same run).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <iterator>
#include <iostream>
#include <stdexcept>

#include "agent/cli/commands.h"
#include "common/json_limits.h"
#include "agent/constrain/constrain.h"
#include "agent/constrain/random_completion.h"
#include "model/tokenizer.h"

namespace qnext::cli {
namespace {

using json = nlohmann::ordered_json;
namespace cs = qnext::constrain;

struct BenchArgs {
    std::string tokenizer = std::string(QNEXT_SOURCE_DIR) + "/tests/data/text";
    std::string schemas = std::string(QNEXT_SOURCE_DIR) + "/tests/data/constrain/schemas.json";
    std::string tools = std::string(QNEXT_SOURCE_DIR) + "/tests/data/constrain/tools20.json";
    std::string python = "python3";
    std::string out_dir = "/tmp";
    int samples = 10;
    uint64_t seed = 1;
    bool no_xgrammar = false;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

json read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error("bench constrain: cannot open " + path);
    try {
        return parse_json_limited(std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()));
    } catch (const std::exception& e) {
        throw std::runtime_error("bench constrain: " + path + ": " + e.what());
    }
}

void run_bench(const BenchArgs& a) {
    auto t0 = std::chrono::steady_clock::now();
    auto vocab = cs::Vocabulary::from_tokenizer(qnext::Tokenizer::load(a.tokenizer));
    const double vocab_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    cs::Grammar::prepare_vocabulary(vocab);   // per-tokenizer tables (as xgrammar's TokenizerInfo, not timed there)
    const double prep_ms = ms_since(t0);
    const json schemas = read_json(a.schemas), tools = read_json(a.tools);
    std::filesystem::create_directories(a.out_dir);
    const std::string seq_path = a.out_dir + "/qnext_constrain_sequences.jsonl";
    std::ofstream seq(seq_path);
    if (!seq) throw std::runtime_error("bench constrain: cannot write '" + seq_path + "'");
    std::vector<double> compile_ms, mask_us;
    double slowest_ms = 0;
    std::string slowest;
    size_t incomplete = 0;
    cs::RandomCompleter sampler(vocab);
    // 20-tool set first, in a fresh process: the first compile is cold (it fills the vocabulary-wide leaf-rule
    // cache, engine.h); the next ones show the shared cache (another tool_choice for the same tools costs the
    // warm time). Then masks over tool-call samples.
    std::vector<double> tool_ms, tool_mask_us;
    const char* choices[] = {"required", "auto", "required", "none"};
    for (int rep = 0; rep < 4; ++rep) {
        auto c0 = std::chrono::steady_clock::now();
        cs::Grammar g = cs::Grammar::from_tools(tools, cs::ToolCallOptions{choices[rep], true, false}, vocab);
        tool_ms.push_back(ms_since(c0));
        if (rep == 0)
            for (int i = 0; i < a.samples; ++i) {
                cs::Matcher m(g);
                auto r = sampler.run(m, 99 + static_cast<uint64_t>(i), 1024, 64, true);
                tool_mask_us.insert(tool_mask_us.end(), r.mask_us.begin(), r.mask_us.end());
            }
    }
    const double tool_cold_ms = tool_ms[0];
    tool_ms.erase(tool_ms.begin());
    for (const auto& e : schemas) {
        auto c0 = std::chrono::steady_clock::now();
        cs::Grammar g = cs::Grammar::from_json_schema(e["schema"], vocab);
        compile_ms.push_back(ms_since(c0));
        if (compile_ms.back() >= slowest_ms) slowest_ms = compile_ms.back(), slowest = e["name"].get<std::string>();
        for (int i = 0; i < a.samples; ++i) {
            cs::Matcher m(g);
            auto r = sampler.run(m, a.seed * 7919 + static_cast<uint64_t>(i), 512, 48, /*time_masks=*/true);
            mask_us.insert(mask_us.end(), r.mask_us.begin(), r.mask_us.end());
            incomplete += r.complete ? 0 : 1;
            seq << json{{"name", e["name"]}, {"schema", e["schema"]}, {"tokens", r.tokens}}.dump() << "\n";
        }
    }
    seq.close();
    json xg;
    if (!a.no_xgrammar) {
        const std::string out = a.out_dir + "/qnext_constrain_xgrammar.json";
        const std::string cmd = a.python + " " + std::string(QNEXT_SOURCE_DIR) +
                                "/tests/reference/constrain_bench_xgrammar.py --tokenizer '" + a.tokenizer +
                                "' --sequences '" + seq_path + "' --tools '" + a.tools + "' > '" + out + "'";
        std::fprintf(stderr, "running xgrammar: %s\n", cmd.c_str());
        if (std::system(cmd.c_str()) == 0) {
            xg = read_json(out);
        } else {
            std::fprintf(stderr, "bench constrain: the xgrammar script failed; showing qnext only\n");
        }
    }
    std::vector<double> xg_compile, xg_mask;
    if (!xg.is_null()) {
        for (const auto& [k, v] : xg["compile_ms"].items()) xg_compile.push_back(v.get<double>());
        for (const auto& v : xg["mask_us"]) xg_mask.push_back(v.get<double>());
    }
    auto col = [&](bool have, double v, const char* fmt) {
        if (!have) return std::string("-");
        char buf[64];
        std::snprintf(buf, sizeof buf, fmt, v);
        return std::string(buf);
    };
    const bool hx = !xg.is_null();
    std::printf("\nconstrained decoding benchmark: %zu schemas x %d samples, vocab %d tokens (loaded in %.0f ms,\n"
                "vocabulary-wide string table %.1f ms, once per tokenizer)\n",
                schemas.size(), a.samples, vocab->size(), vocab_ms, prep_ms);
    std::printf("%-34s %14s %16s\n", "metric", "qnext", "xgrammar 0.2.8");
    std::printf("%-34s %14s %16s\n", "mask per token p50 (us)", col(true, pct(mask_us, 50), "%.1f").c_str(), col(hx, pct(xg_mask, 50), "%.1f").c_str());
    std::printf("%-34s %14s %16s\n", "mask per token p99 (us)", col(true, pct(mask_us, 99), "%.1f").c_str(), col(hx, pct(xg_mask, 99), "%.1f").c_str());
    std::printf("%-34s %14s %16s\n", "mask per token max (us)", col(true, pct(mask_us, 100), "%.1f").c_str(), col(hx, pct(xg_mask, 100), "%.1f").c_str());
    std::printf("%-34s %14s %16s\n", "masks timed", std::to_string(mask_us.size()).c_str(), hx ? std::to_string(xg_mask.size()).c_str() : "-");
    std::printf("%-34s %14s %16s\n", "schema compile p50 (ms)", col(true, pct(compile_ms, 50), "%.2f").c_str(), col(hx, pct(xg_compile, 50), "%.2f").c_str());
    std::printf("%-34s %14s %16s\n", "schema compile max (ms)", col(true, pct(compile_ms, 100), "%.2f").c_str(), col(hx, pct(xg_compile, 100), "%.2f").c_str());
    if (!slowest.empty()) std::printf("%-34s %14s\n", "  slowest schema", slowest.c_str());
    std::printf("%-34s %14s %16s\n", "20-tool set compile, cold (ms)", col(true, tool_cold_ms, "%.1f").c_str(),
                col(hx, hx ? xg["tool20_compile_ms"].get<double>() : 0, "%.1f").c_str());
    std::printf("%-34s %14s %16s\n", "20-tool set, other tool_choice (ms)", col(true, pct(tool_ms, 50), "%.1f").c_str(), "-");
    std::printf("%-34s %14s %16s\n", "tool-call mask p50 / p99 (us)",
                (col(true, pct(tool_mask_us, 50), "%.1f") + " / " + col(true, pct(tool_mask_us, 99), "%.1f")).c_str(), "-");
    std::printf("%-34s %14zu %16s\n", "samples not complete", incomplete, "");
    if (hx) std::printf("%-34s %14s %16d\n", "qnext sequences xgrammar rejected", "", xg["rejected_sequences"].get<int>());
    std::printf("(single thread each; xgrammar: max_threads=1, cache off, any_whitespace=False; its mask times include\n"
                " the Python call overhead. Sequences: %s)\n", seq_path.c_str());
}

// Compile time and mask time against schema size, per family, doubling the size until the schema limits
// refuse it: the curve shows whether cost stays linear for what is accepted.
void run_growth(const std::string& tokenizer, int max_n, uint64_t seed) {
    using json = nlohmann::ordered_json;
    auto vocab = constrain::Vocabulary::from_tokenizer(Tokenizer::load(tokenizer));
    constrain::Grammar::prepare_vocabulary(vocab);
    struct Family {
        const char* name;
        std::function<json(int)> make;
    };
    const std::vector<Family> families = {
        {"object, n integer properties", [](int n) {
             json p = json::object();
             for (int i = 0; i < n; ++i) p["p" + std::to_string(i)] = json{{"type", "integer"}};
             return json{{"type", "object"}, {"properties", p}};
         }},
        {"enum, n strings", [](int n) {
             json e = json::array();
             for (int i = 0; i < n; ++i) e.push_back("value_" + std::to_string(i));
             return json{{"enum", e}};
         }},
        {"pattern, n alternatives", [](int n) {
             std::string re;
             for (int i = 0; i < n; ++i) re += (i ? "|" : "") + std::string("w") + std::to_string(i);
             return json{{"type", "string"}, {"pattern", "^(" + re + ")$"}};
         }},
        {"array nesting depth n", [](int n) {
             json j{{"type", "integer"}};
             for (int i = 0; i < n; ++i) j = json{{"type", "array"}, {"items", j}, {"maxItems", 3}};
             return j;
         }},
        {"anyOf of n objects", [](int n) {
             json a = json::array();
             for (int i = 0; i < n; ++i)
                 a.push_back(json{{"type", "object"}, {"properties", {{"kind", {{"const", "k" + std::to_string(i)}}}}},
                                  {"required", {"kind"}}});
             return json{{"anyOf", a}};
         }},
    };
    constrain::RandomCompleter sampler(vocab);
    std::printf("%-30s %7s %12s %12s %14s\n", "family", "n", "compile ms", "states", "mask p50 us");
    for (const auto& f : families) {
        for (int n = 1; n <= max_n; n *= 2) {
            const json schema = f.make(n);
            const auto t0 = std::chrono::steady_clock::now();
            std::optional<constrain::Grammar> g;
            try {
                g.emplace(constrain::Grammar::from_json_schema(schema, vocab));
            } catch (const std::exception& e) {
                std::printf("%-30s %7d   refused (%.1f ms): %.80s\n", f.name, n, ms_since(t0), e.what());
                break;
            }
            const double compile = ms_since(t0);
            constrain::Matcher m(*g);
            constrain::RandomCompletion c = sampler.run(m, seed, 256, 64, /*time_masks=*/true);
            std::vector<double> us = c.mask_us;
            std::sort(us.begin(), us.end());
            std::printf("%-30s %7d %12.2f %12zu %14.1f\n", f.name, n, compile, g->num_states(),
                        us.empty() ? 0.0 : us[us.size() / 2]);
        }
    }
}

}  // namespace

void add_constrain_commands(Context& ctx) {
    {
        auto tok = std::make_shared<std::string>(std::string(QNEXT_SOURCE_DIR) + "/tests/data/text");
        auto max_n = std::make_shared<int>(4096);
        auto seed = std::make_shared<uint64_t>(1);
        CLI::App* g = ctx.bench->add_subcommand("schema-growth", "compile and mask time vs schema size, per schema family");
        g->add_option("--tokenizer", *tok, "tokenizer directory or tokenizer.json");
        g->add_option("--max-n", *max_n, "largest size (doubling from 1; default 4096)")->check(CLI::Range(1, 1 << 20));
        g->add_option("--seed", *seed, "random seed of the sampled completions");
        g->callback([tok, max_n, seed] { run_growth(*tok, *max_n, *seed); });
    }
    auto args = std::make_shared<BenchArgs>();
    CLI::App* b = ctx.bench->add_subcommand("constrain", "grammar-constrained decoding: mask time and compile time vs xgrammar");
    b->add_option("--tokenizer", args->tokenizer, "tokenizer directory or tokenizer.json");
    b->add_option("--schemas", args->schemas, "schema set (JSON array of {name, schema})");
    b->add_option("--tools", args->tools, "tool set for the tool-grammar compile benchmark");
    b->add_option("--samples", args->samples, "random completions per schema")->check(CLI::Range(1, 1000));
    b->add_option("--seed", args->seed, "random seed");
    b->add_option("--python", args->python, "python interpreter with xgrammar 0.2.8 (tests/reference/requirements.txt)");
    b->add_option("--out-dir", args->out_dir, "where the sampled sequences and xgrammar results are written");
    b->add_flag("--no-xgrammar", args->no_xgrammar, "skip the xgrammar side");
    b->callback([args] { run_bench(*args); });
}

}  // namespace qnext::cli
