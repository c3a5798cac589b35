// Forward-pass commands:
//   qnext logits   --model DIR --ids FILE.json --out FILE.f32
//   qnext generate --model DIR (--prompt TEXT | --ids FILE.json) --max-tokens N [sampling] [--chat]
//                  [--json-schema FILE | --tools FILE [--tool-choice auto|required|none|NAME]]
//   qnext bench    --model DIR|FILE.gguf | --config FILE [--threads N --prefill N --contexts A,B --steps N]
// --model defaults to models/demo (next to the binary's source tree, QNEXT_SOURCE_DIR).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/cli/commands.h"
#include "common/json_limits.h"
#include "agent/runtime.h"
#include "agent/constrain/constrain.h"
#include "kernels/backend.h"
#include "model/chat_encode.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/forward_bench.h"
#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/sampler.h"
#include "model/speculative.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace qnext::cli {

namespace fs = std::filesystem;

namespace {

// --model given, else models/demo beside the executable's tree or in the source tree.
fs::path resolve_model_dir(const std::string& given) {
    if (!given.empty()) {
        if (!fs::exists(given)) throw std::runtime_error("model '" + given + "' does not exist");
        if (!is_model_path(given))
            throw std::runtime_error("model '" + given + "' is neither a folder with config.json nor a GGUF file");
        return given;
    }
    const fs::path dir = agent::default_model_dir();
    if (fs::exists(dir / "config.json")) return dir;
    throw std::runtime_error("no --model given and the default model folder " + dir.string() +
                             " has no config.json (train the demo model with tests/reference/demo_model, or pass --model DIR)");
}

std::vector<int32_t> read_ids_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open ids file '" + path + "'");
    nlohmann::json j;
    try {
        j = parse_json_limited(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    } catch (const std::exception& e) {
        throw std::runtime_error("ids file '" + path + "': invalid JSON: " + e.what());
    }
    if (j.is_object() && j.contains("ids")) j = j["ids"];
    if (!j.is_array()) throw std::runtime_error("ids file '" + path + "': expected a JSON array of token ids");
    std::vector<int32_t> ids;
    for (size_t i = 0; i < j.size(); ++i) {
        if (!j[i].is_number_integer() || (j[i].is_number_unsigned() && j[i].get<uint64_t>() > INT32_MAX) ||
            j[i].get<int64_t>() < INT32_MIN || j[i].get<int64_t>() > INT32_MAX)
            throw std::runtime_error("ids file '" + path + "': element " + std::to_string(i) + " is not a token id");
        ids.push_back(j[i].get<int32_t>());
    }
    if (ids.empty()) throw std::runtime_error("ids file '" + path + "': no token ids");
    return ids;
}

nlohmann::ordered_json read_json_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open '" + path + "'");
    try {
        return parse_json_limited<nlohmann::ordered_json>(
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    } catch (const std::exception& e) {
        throw std::runtime_error("'" + path + "': invalid JSON: " + e.what());
    }
}

// ---- logits ------------------------------------------------------------------------------------

struct LogitsArgs {
    std::string model, ids, out, trace_dir;
};

// Debug aid: every named intermediate as TRACE_DIR/<layer>.<name>.f32 (row-major float32) plus
// index.json with shapes, for layer-by-layer diffing against a reference dump.
void install_trace_dump(Qwen3NextModel& model, const fs::path& dir, nlohmann::ordered_json& index) {
    fs::create_directories(dir);
    model.set_trace([dir, &index](std::string_view name, int layer, const kern::Tensor& t) {
        const std::string file = std::to_string(layer) + "." + std::string(name) + ".f32";
        std::ofstream out(dir / file, std::ios::binary);
        for (int64_t r = 0; r < t.rows(); ++r)
            out.write(static_cast<const char*>(t.row_ptr(r)), static_cast<std::streamsize>(t.dim(-1) * sizeof(float)));
        if (!out) throw std::runtime_error("cannot write trace file " + (dir / file).string());
        index[file] = std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.rank);
    });
}

void run_logits(const LogitsArgs& a, const Context& ctx) {
    ModelFolder folder = load_model_folder(resolve_model_dir(a.model), !ctx.quiet);
    Qwen3NextModel model(folder);
    const auto ids = read_ids_file(a.ids);
    nlohmann::ordered_json trace_index = nlohmann::ordered_json::object();
    if (!a.trace_dir.empty()) install_trace_dump(model, a.trace_dir, trace_index);
    SequenceState st = model.new_state(static_cast<int64_t>(ids.size()));
    const Logits l = model.forward(st, ids, LogitsRows::All);
    if (!a.trace_dir.empty()) std::ofstream(fs::path(a.trace_dir) / "index.json") << trace_index.dump(1) << "\n";
    std::ofstream out(a.out, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write '" + a.out + "'");
    out.write(reinterpret_cast<const char*>(l.data.data()), static_cast<std::streamsize>(l.data.size() * sizeof(float)));
    if (!out) throw std::runtime_error("writing '" + a.out + "' failed");
    std::printf("logits [%lld x %lld] float32 -> %s\n", static_cast<long long>(l.rows),
                static_cast<long long>(l.vocab), a.out.c_str());
}

// ---- generate ----------------------------------------------------------------------------------

struct GenerateArgs {
    std::string model, prompt, ids, templ;
    std::string json_schema, tools, tool_choice = "auto";
    int64_t max_tokens = 128;
    bool chat = false, ignore_eos = false, no_parallel_tool_calls = false;
    int speculative = 0;
    SamplerParams sampling;
};

void run_generate(const GenerateArgs& a, const Context& ctx) {
    if (a.prompt.empty() == a.ids.empty()) throw std::runtime_error("generate: give exactly one of --prompt or --ids");
    if (a.chat && a.prompt.empty()) throw std::runtime_error("generate: --chat needs --prompt");
    if (a.max_tokens < 1) throw std::runtime_error("generate: --max-tokens must be >= 1");
    a.sampling.validate();
    ModelFolder folder = load_model_folder(resolve_model_dir(a.model), !ctx.quiet);
    Qwen3NextModel model(folder);

    std::optional<Tokenizer> tok;
    if (folder.has_tokenizer()) tok = Tokenizer::load(folder.tokenizer_path());
    if (!a.json_schema.empty() && !a.tools.empty())
        throw std::runtime_error("generate: give at most one of --json-schema and --tools");
    const bool constrained = !a.json_schema.empty() || !a.tools.empty();
    if (constrained && !tok)
        throw std::runtime_error("generate: constrained decoding needs the model's tokenizer.json");
    // --tools: an OpenAI tool list, or qnext's user-tools file ({"tools": [{name, description, parameters, argv}]}),
    // whose declarations are used (generate runs no tools).
    nlohmann::ordered_json tools = a.tools.empty() ? nlohmann::ordered_json() : read_json_file(a.tools);
    if (tools.is_object() && tools.contains("tools") && tools["tools"].is_array()) {
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (const auto& t : tools["tools"]) {
            if (!t.is_object() || !t.contains("name"))
                throw std::runtime_error("generate: " + a.tools + ": every entry of \"tools\" needs a \"name\"");
            nlohmann::ordered_json fn{{"name", t["name"]}};
            if (t.contains("description")) fn["description"] = t["description"];
            fn["parameters"] = t.value("parameters", nlohmann::ordered_json{{"type", "object"}, {"properties", nlohmann::ordered_json::object()}});
            list.push_back({{"type", "function"}, {"function", fn}});
        }
        tools = list;
    } else if (!tools.is_null() && !tools.is_array()) {
        throw std::runtime_error("generate: " + a.tools + ": expected an OpenAI tool list (a JSON array) or a tools file "
                                 "({\"tools\": [...]})");
    }
    bool thinking = false;  // the prompt ends inside <think> (Thinking template, Qwen3.5 with thinking on)
    bool xml = false;       // Qwen3.5 / 3.6 XML tool calls
    std::vector<int32_t> prompt;
    if (!a.prompt.empty()) {
        if (!tok) throw std::runtime_error("generate: model folder " + folder.dir.string() +
                                           " has no tokenizer.json; use --ids FILE.json");
        std::string text = a.prompt;
        if (a.chat) {
            std::optional<TemplateKind> kind;
            if (!a.templ.empty()) kind = parse_template_name(a.templ);
            const TemplateKind k = resolve_template(folder.path, kind);
            nlohmann::ordered_json req = {{"messages", {{{"role", "user"}, {"content", a.prompt}}}},
                                          {"add_generation_prompt", true}};
            if (!tools.is_null()) req["tools"] = tools;
            prompt = encode_chat(*tok, k, req);   // the prompt's text is data, not markup
            thinking = k == TemplateKind::Thinking || k == TemplateKind::Qwen35;   // Qwen3.5 opens <think> by default
            xml = xml_tool_calls(k);
        } else {
            prompt = tok->encode(text);
        }
    } else {
        prompt = read_ids_file(a.ids);
    }
    const int64_t ctx_len = static_cast<int64_t>(prompt.size()) + a.max_tokens;
    if (ctx_len > folder.config.max_position_embeddings)
        throw std::runtime_error("generate: prompt (" + std::to_string(prompt.size()) + " tokens) + --max-tokens " +
                                 std::to_string(a.max_tokens) + " exceeds max_position_embeddings = " +
                                 std::to_string(folder.config.max_position_embeddings));
    SequenceState st = model.new_state(ctx_len);
    Sampler sampler(a.sampling, model.vocab_size());
    std::optional<StreamDecoder> stream;
    if (tok) stream.emplace(*tok);
    const std::vector<int32_t> eos = tok ? tok->eos_ids() : std::vector<int32_t>{};
    std::optional<constrain::Matcher> matcher;
    if (constrained) {
        auto vocab = constrain::Vocabulary::from_tokenizer(*tok);
        matcher.emplace(a.tools.empty()
                            ? constrain::compile_json_schema(vocab, read_json_file(a.json_schema), thinking)
                            : constrain::compile_tool_calls(vocab, tools, a.tool_choice, !a.no_parallel_tool_calls, thinking,
                                                            xml ? constrain::ToolFormat::Xml : constrain::ToolFormat::Json));
        sampler.set_mask_hook([&](uint32_t* words, size_t n) { matcher->fill_next_token_bitmask(words, n); });
    }

    using Clock = std::chrono::steady_clock;
    if (a.speculative > 0) {   // greedy decoding with MTP drafts (model/speculative.h)
        const SamplerParams& sp = a.sampling;
        if (sp.temperature != 0.0f || sp.presence_penalty != 0.0f || sp.repetition_penalty != 1.0f)
            throw std::runtime_error("generate: --speculative decodes greedily for now (temperature 0, no penalties)");
        SequenceState mst = model.new_mtp_state(ctx_len);
        GreedyOptions go;
        go.max_new_tokens = a.max_tokens;
        go.speculative = a.speculative;
        if (!a.ignore_eos) go.stop_ids = eos;
        if (matcher)
            go.fill_mask = [&](uint32_t* w, size_t n) {
                matcher->fill_next_token_bitmask(w, n);
                return true;
            };
        int64_t shown = 0;
        go.on_token = [&](int32_t id) {
            if (matcher && !matcher->accept_token(id))
                throw std::runtime_error("generate: token " + std::to_string(id) + " rejected by the grammar");
            const bool stop = (matcher && matcher->is_terminated()) ||
                              (!a.ignore_eos && std::find(eos.begin(), eos.end(), id) != eos.end());
            if (!stop) {
                if (stream) std::cout << stream->push(id) << std::flush;
                else std::cout << (shown ? " " : "") << id << std::flush;
                ++shown;
            }
            return !stop;
        };
        const auto t0 = Clock::now();
        GreedyGeneration g = greedy_generate(model, st, &mst, prompt, go);
        const auto t1 = Clock::now();
        if (stream) std::cout << stream->finish();
        std::cout << "\n" << std::flush;
        if (!ctx.quiet) {
            const auto& sst = g.stats;
            std::string depths;
            for (size_t j = 0; j < sst.drafted_at_depth.size(); ++j)
                depths += (j ? " " : "") + std::to_string(sst.accepted_at_depth[j]) + "/" + std::to_string(sst.drafted_at_depth[j]);
            const double sec = std::chrono::duration<double>(t1 - t0).count();
            std::fprintf(stderr, "[%zu prompt tokens + %zu generated in %.2f s (%.1f tok/s incl. prefill); speculative k=%d: "
                                 "%lld verify steps, accepted %lld of %lld drafts (per depth %s), %lld tokens recomputed]\n",
                         prompt.size(), g.tokens.size(), sec, g.tokens.size() / std::max(sec, 1e-9), a.speculative,
                         static_cast<long long>(sst.verify_steps), static_cast<long long>(sst.accepted),
                         static_cast<long long>(sst.drafted), depths.c_str(), static_cast<long long>(sst.recomputed_tokens));
        }
        return;
    }
    const auto t0 = Clock::now();
    Logits logits = model.forward(st, prompt);
    const auto t1 = Clock::now();
    std::vector<int32_t> history = prompt;
    int64_t generated = 0;
    for (; generated < a.max_tokens; ++generated) {
        const int32_t id = sampler.sample(logits.last(), history);
        history.push_back(id);
        if (matcher && !matcher->accept_token(id))
            throw std::runtime_error("generate: sampled token " + std::to_string(id) + " rejected by the grammar");
        const bool stop = (matcher && matcher->is_terminated()) ||
                          (!a.ignore_eos && std::find(eos.begin(), eos.end(), id) != eos.end());
        if (stop) {
            ++generated;
            break;
        }
        if (stream)
            std::cout << stream->push(id) << std::flush;
        else
            std::cout << (generated ? " " : "") << id << std::flush;
        if (generated + 1 < a.max_tokens) logits = model.forward(st, std::span<const int32_t>(&id, 1));
    }
    if (stream) std::cout << stream->finish();
    std::cout << "\n" << std::flush;
    const auto t2 = Clock::now();
    if (!ctx.quiet) {
        const double pre = std::chrono::duration<double>(t1 - t0).count();
        const double dec = std::chrono::duration<double>(t2 - t1).count();
        std::fprintf(stderr, "[%zu prompt tokens in %.2f s (%.1f tok/s), %lld generated in %.2f s (%.1f tok/s)]\n",
                     prompt.size(), pre, prompt.size() / pre, static_cast<long long>(generated), dec,
                     generated / std::max(dec, 1e-9));
    }
}

// ---- bench -------------------------------------------------------------------------------------

struct BenchArgs {
    std::string model, config, keep;
    int threads = 0;
    int64_t prefill = 512;
    std::vector<int64_t> contexts{128, 4096};
    int steps = 16;
    uint64_t seed = 1;
};

// A temporary folder removed on scope exit (random bf16 checkpoint for --config).
struct TempDir {
    fs::path path;
    TempDir() : path(agent::make_temp_dir("qnext-bench")) {}
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void run_bench(const BenchArgs& a, const Context& ctx) {
    if (a.model.empty() == a.config.empty()) throw std::runtime_error("bench: give exactly one of --model DIR or --config FILE");
    if (a.threads > 0) kern::set_num_threads(a.threads);
    auto log = [&](const std::string& s) {
        if (!ctx.quiet) std::fprintf(stderr, "  %s\n", s.c_str());
    };
    std::optional<TempDir> tmp;
    fs::path dir = a.model;
    if (!a.config.empty()) {
        const Qwen3NextConfig cfg = load_config(a.config);
        if (a.keep.empty()) tmp.emplace();
        dir = a.keep.empty() ? tmp->path : fs::path(a.keep);
        if (fs::exists(dir / "config.json")) {
            const Qwen3NextConfig kept = load_config(dir / "config.json");
            if (kept.hidden_size != cfg.hidden_size || kept.num_hidden_layers != cfg.num_hidden_layers ||
                kept.num_experts != cfg.num_experts || kept.vocab_size != cfg.vocab_size)
                throw std::runtime_error("bench: --keep " + dir.string() + " holds a checkpoint of another config");
            log("reusing the random checkpoint in " + dir.string());
        } else {
            log("writing a random bf16 checkpoint for " + a.config + " to " + dir.string() + " ...");
            CheckpointOptions co;
            co.seed = a.seed;
            co.dtype = TensorDType::BF16;
            co.progress = !ctx.quiet;
            write_random_checkpoint(cfg, dir, co);
        }
    }
    ModelFolder folder = load_model_folder(dir, !ctx.quiet);
    Qwen3NextModel model(folder);
    ForwardBenchOptions o;
    o.prefill_tokens = a.prefill;
    o.decode_contexts = a.contexts;
    o.decode_steps = a.steps;
    o.seed = a.seed;
    for (int64_t c : o.decode_contexts)
        if (c + o.decode_steps + 2 > folder.config.max_position_embeddings)
            throw std::runtime_error("bench: context " + std::to_string(c) + " exceeds max_position_embeddings");
    std::printf("model: %s (%lld layers, hidden %lld, %lld experts top-%lld)\n",
                a.config.empty() ? a.model.c_str() : a.config.c_str(),
                static_cast<long long>(folder.config.num_hidden_layers), static_cast<long long>(folder.config.hidden_size),
                static_cast<long long>(folder.config.num_experts), static_cast<long long>(folder.config.num_experts_per_tok));
    std::printf("%s\n", kern::backend_summary().c_str());
    const ForwardBenchResult r = run_forward_bench(model, o, log);
    std::printf("active weight bytes per token: %.1f MB\n", r.active_bytes_per_token / 1e6);
    std::printf("measured read bandwidth (%d threads): %.2f GB/s\n", r.threads, r.read_bandwidth_gb_s);
    std::printf("prefill %lld tokens: %.1f tok/s\n", static_cast<long long>(r.prefill_tokens), r.prefill_tokens_per_s);
    for (const auto& d : r.decode)
        std::printf("decode at context %lld%s: %.2f tok/s (%.1f ms/token), weights %.2f GB/s vs read bandwidth "
                    "%.2f GB/s = %.0f%% of roofline\n",
                    static_cast<long long>(d.context), d.context_prefilled ? "" : " (KV zero-filled)", d.tokens_per_s,
                    d.ms_per_token, d.weight_gb_per_s, d.read_bandwidth_gb_s, 100.0 * d.roofline_fraction);
}

}  // namespace


// ---- bench speculative ---------------------------------------------------------------------------

struct SpecBenchArgs {
    std::string model, prompt = "Write a Python function that returns the n-th Fibonacci number, and test it.";
    int64_t tokens = 256;
    int max_k = 4, runs = 3, threads = 0;
    bool costs = false;
    int64_t context = 512;
};

// --costs: what one speculative step costs relative to one plain decode step at a given context, from timed
// forwards (works on random-weight models): verify of k+1 tokens (recurrent GDN, as speculation runs it), one
// MTP draft, one plain decode step. With acceptance rates a_j per depth the expected speed-up of a step is
// (1 + a_1 + a_1 a_2 + ...) / cost ratio.
void run_bench_speculative_costs(const SpecBenchArgs& a) {
    if (a.threads > 0) kern::set_num_threads(a.threads);
    ModelFolder folder = load_model_folder(resolve_model_dir(a.model), false);
    Qwen3NextModel model(folder);
    if (!model.has_mtp()) throw std::runtime_error("bench speculative: the model has no MTP head (no mtp.* tensors)");
    Qwen3NextModel rec = model;
    rec.set_gdn_mode(GdnMode::Recurrent);
    const int64_t H = model.config().hidden_size, ctx = a.context;
    std::vector<int32_t> prompt(static_cast<size_t>(ctx));
    for (int64_t i = 0; i < ctx; ++i) prompt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % model.vocab_size());
    using Clock = std::chrono::steady_clock;
    auto best_of = [&](const std::function<void()>& f) {
        double best = 1e30;
        for (int r = 0; r < std::max(a.runs, 3); ++r) {
            const auto t0 = Clock::now();
            f();
            best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
        }
        return best;
    };
    SequenceState st = model.new_state(ctx + 16);
    model.forward(st, prompt);
    const auto snap = st.snapshot();
    const int32_t t = 11;
    const double plain = best_of([&] {
        st.restore(snap);
        model.forward(st, std::span<const int32_t>(&t, 1));
    });
    SequenceState mst = model.new_mtp_state(ctx + 16);
    std::vector<float> h(static_cast<size_t>(H), 0.1f);
    const double draft = best_of([&] {
        mst.truncate(0);
        model.mtp_forward(mst, h, std::span<const int32_t>(&t, 1));
    });
    std::printf("costs at context %lld: plain decode step %.2f ms, one MTP draft %.2f ms (%.2fx a step)\n",
                static_cast<long long>(ctx), plain * 1e3, draft * 1e3, draft / plain);
    for (int k = 1; k <= a.max_k; ++k) {
        std::vector<int32_t> chunk(static_cast<size_t>(k) + 1, t);
        const double verify = best_of([&] {
            st.restore(snap);
            rec.forward(st, chunk, LogitsRows::All);
        });
        std::printf("  k=%d  verify %d tokens %.2f ms (%.2fx a step); step = verify + %d drafts = %.2fx a plain step, "
                    "break-even at %.2f tokens per step\n",
                    k, k + 1, verify * 1e3, verify / plain, k, (verify + k * draft) / plain, (verify + k * draft) / plain);
    }
}

// Plain greedy decoding vs MTP speculation (k = 1..max_k) on the same prompt in one run: generation time
// (prefill measured separately and subtracted), tokens/s, acceptance per depth, the best k.
void run_bench_speculative(const SpecBenchArgs& a) {
    if (a.threads > 0) kern::set_num_threads(a.threads);
    ModelFolder folder = load_model_folder(resolve_model_dir(a.model), false);
    Qwen3NextModel model(folder);
    if (!model.has_mtp()) throw std::runtime_error("bench speculative: the model has no MTP head (no mtp.* tensors)");
    if (!folder.has_tokenizer()) throw std::runtime_error("bench speculative: the model folder has no tokenizer.json");
    Tokenizer tok = Tokenizer::load(folder.tokenizer_path());
    const TemplateKind kind = resolve_template(folder.path);
    const nlohmann::ordered_json req = {{"messages", {{{"role", "user"}, {"content", a.prompt}}}},
                                        {"add_generation_prompt", true}};
    const std::vector<int32_t> prompt = encode_chat(tok, kind, req);
    const int64_t cap = static_cast<int64_t>(prompt.size()) + a.tokens + 1;
    using Clock = std::chrono::steady_clock;
    auto seconds = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    double prefill = 1e30;   // best of runs
    for (int r = 0; r < a.runs; ++r) {
        SequenceState st = model.new_state(cap);
        const auto t0 = Clock::now();
        model.forward(st, prompt);
        prefill = std::min(prefill, seconds(t0));
    }
    std::printf("model %s, prompt %zu tokens, %lld new tokens (greedy, no eos), best of %d runs\n", a.model.c_str(),
                prompt.size(), static_cast<long long>(a.tokens), a.runs);
    double plain_tps = 0, best_tps = 0;
    int best_k = 0;
    std::vector<int32_t> reference;
    for (int k = 0; k <= a.max_k; ++k) {
        double best = 1e30;
        GreedyGeneration g;
        for (int r = 0; r < a.runs; ++r) {
            SequenceState st = model.new_state(cap);
            std::optional<SequenceState> mst;
            if (k > 0) mst.emplace(model.new_mtp_state(cap));
            GreedyOptions o;
            o.max_new_tokens = a.tokens;
            o.speculative = k;
            const auto t0 = Clock::now();
            g = greedy_generate(model, st, mst ? &*mst : nullptr, prompt, o);
            best = std::min(best, seconds(t0));
        }
        if (k == 0) reference = g.tokens;
        const double gen = std::max(best - prefill, 1e-9);
        const double tps = static_cast<double>(g.tokens.size()) / gen;
        if (k == 0) plain_tps = tps;
        std::string depths;
        for (size_t j = 0; j < g.stats.drafted_at_depth.size(); ++j)
            depths += (j ? " " : "") + std::to_string(g.stats.drafted_at_depth[j] ? 100 * g.stats.accepted_at_depth[j] /
                                                                                     g.stats.drafted_at_depth[j] : 0) + "%";
        std::printf("  k=%d  %7.1f tok/s  %5.2fx plain%s%s%s\n", k, tps, tps / plain_tps,
                    k ? ("  accepted per depth " + depths).c_str() : "",
                    k ? ("  (" + std::to_string(g.stats.verify_steps) + " verify steps)").c_str() : "",
                    g.tokens == reference ? "" : "  OUTPUT DIFFERS FROM PLAIN");
        if (tps > best_tps) best_tps = tps, best_k = k;
    }
    std::printf("best k = %d (%.2fx plain decoding)\n", best_k, best_tps / plain_tps);
}

void add_forward_commands(Context& ctx) {
    {
        auto sa = std::make_shared<SpecBenchArgs>();
        CLI::App* sb = ctx.bench->add_subcommand("speculative", "MTP speculative greedy decoding vs plain, k = 1..max");
        sb->add_option("--model", sa->model, "model folder with an MTP head (default: the demo model)");
        sb->add_option("--prompt", sa->prompt, "user message (rendered with the model's chat template)");
        sb->add_option("--tokens", sa->tokens, "tokens to generate (default 256)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
        sb->add_option("--max-k", sa->max_k, "largest k (default 4)")->check(CLI::Range(1, 8));
        sb->add_option("--runs", sa->runs, "runs per k, best taken (default 3)")->check(CLI::Range(1, 100));
        sb->add_option("--threads", sa->threads, "CPU threads (default: all)");
        sb->add_flag("--costs", sa->costs, "time a verify step, a draft and a plain step instead (random models too)");
        sb->add_option("--context", sa->context, "--costs: context before the step (default 512)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
        sb->callback([sa] {
            if (sa->costs) run_bench_speculative_costs(*sa);
            else run_bench_speculative(*sa);
        });
    }
    auto* logits = ctx.app->add_subcommand("logits", "write the logits of a token sequence as float32 [n x vocab]");
    auto la = std::make_shared<LogitsArgs>();
    logits->add_option("--model", la->model, "model folder or GGUF file (default: models/demo)");
    logits->add_option("--ids", la->ids, "JSON array of token ids")->required();
    logits->add_option("--out", la->out, "output file (row-major little-endian float32)")->required();
    logits->add_option("--trace-dir", la->trace_dir, "also dump every named intermediate tensor into this folder");
    logits->callback([la, &ctx] { run_logits(*la, ctx); });

    auto* gen = ctx.app->add_subcommand("generate", "generate text from a prompt (streams to stdout)");
    auto ga = std::make_shared<GenerateArgs>();
    gen->add_option("--model", ga->model, "model folder or GGUF file (default: models/demo)");
    gen->add_option("--prompt", ga->prompt, "prompt text");
    gen->add_option("--ids", ga->ids, "JSON array of prompt token ids (prints ids if the model has no tokenizer)");
    gen->add_option("--max-tokens", ga->max_tokens, "tokens to generate")->capture_default_str();
    gen->add_option("--temperature", ga->sampling.temperature, "0 = greedy")->capture_default_str();
    gen->add_option("--top-p", ga->sampling.top_p)->capture_default_str();
    gen->add_option("--top-k", ga->sampling.top_k, "0 = off")->capture_default_str();
    gen->add_option("--min-p", ga->sampling.min_p)->capture_default_str();
    gen->add_option("--presence-penalty", ga->sampling.presence_penalty)->capture_default_str();
    gen->add_option("--repetition-penalty", ga->sampling.repetition_penalty)->capture_default_str();
    gen->add_option("--seed", ga->sampling.seed)->capture_default_str();
    gen->add_flag("--chat", ga->chat, "wrap the prompt as one user turn with the model's chat template");
    gen->add_option("--speculative", ga->speculative,
                    "MTP self-speculative decoding: draft K tokens per step (1..8; greedy only; needs an MTP head)")
        ->check(CLI::Range(0, 8));
    gen->add_option("--template", ga->templ, "chat template override: instruct | thinking | hybrid | qwen35");
    gen->add_flag("--ignore-eos", ga->ignore_eos, "do not stop at end-of-sequence tokens");
    gen->add_option("--json-schema", ga->json_schema, "constrain the output to JSON matching this schema file");
    gen->add_option("--tools", ga->tools, "JSON file with a tool list: rendered into the chat prompt and the "
                                          "output constrained to Qwen3 tool-call syntax");
    gen->add_option("--tool-choice", ga->tool_choice, "auto | required | none | <tool name>")->capture_default_str();
    gen->add_flag("--no-parallel-tool-calls", ga->no_parallel_tool_calls, "at most one tool call");
    gen->callback([ga, &ctx] { run_generate(*ga, ctx); });

    auto ba = std::make_shared<BenchArgs>();
    ctx.bench->add_option("--model", ba->model, "model folder or GGUF file to benchmark");
    ctx.bench->add_option("--config", ba->config, "config.json: benchmark random bf16 weights of these shapes");
    ctx.bench->add_option("--keep", ba->keep, "with --config: write the random checkpoint here and reuse it next time");
    ctx.bench->add_option("--threads", ba->threads, "threads (default: all cores)");
    ctx.bench->add_option("--prefill", ba->prefill, "prefill length")->capture_default_str();
    ctx.bench->add_option("--contexts", ba->contexts, "decode contexts")->delimiter(',')->capture_default_str();
    ctx.bench->add_option("--steps", ba->steps, "timed decode steps per context")->capture_default_str();
    ctx.bench->add_option("--seed", ba->seed)->capture_default_str();
    ctx.bench->callback([ba, &ctx] {
        if (!ctx.bench->get_subcommands().empty()) return;  // e.g. `bench constrain`
        run_bench(*ba, ctx);
    });
}

}  // namespace qnext::cli
