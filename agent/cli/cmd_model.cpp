// `qnext info` and `qnext make-checkpoint`.
#include <map>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "agent/cli/commands.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/model_folder.h"
#include "model/gguf.h"
#include "model/gguf_export.h"
#include "model/gguf_model.h"
#include "model/model_info.h"

namespace qnext::cli {
namespace {

struct InfoArgs {
    std::string config, model;
    bool json = false;
    int64_t mtp = -1;
};

struct MakeArgs {
    std::string config, out, dtype = "bf16";
    uint64_t seed = 0;
    int shards = 1;
    int64_t mtp = -1;
    bool fused = false;
};

struct QuantizeArgs {
    std::string model, out, type = "q8_0";
};

void run_quantize(const QuantizeArgs& a, bool quiet) {
    GgufExportOptions o;
    o.type = a.type;
    const bool tty = !quiet && isatty(STDERR_FILENO);
    if (tty)
        o.progress = [](size_t done, size_t total, const std::string& name) {
            std::fprintf(stderr, "\r  %zu/%zu %-48.48s", done, total, name.c_str());
            if (done == total) std::fprintf(stderr, "\n");
        };
    const GgufExportResult r = export_gguf(a.model, a.out, o);
    if (!quiet)
        std::fprintf(stderr, "wrote %s: %zu tensors, %.2f MiB (%s)\n", a.out.c_str(), r.tensors, double(r.bytes) / (1 << 20),
                     a.type.c_str());
}

void run_info(const InfoArgs& a) {
    if (a.config.empty() == a.model.empty()) throw std::runtime_error("info: give exactly one of --config FILE or --model DIR");
    Qwen3NextConfig cfg;
    std::string source;
    std::optional<GgufTypeSummary> gguf;
    std::map<std::string, uint64_t> file_bytes;   // safetensors folder: bytes per dtype actually in the files
    if (!a.model.empty() && looks_like_gguf(a.model)) {
        // A llama.cpp GGUF: hyperparameters from its metadata, types and bytes from its tensor infos.
        auto f = GgufFile::open(a.model);
        cfg = gguf_config(*f);
        gguf = summarize_gguf(*f, cfg);
        source = a.model;
    } else if (!a.model.empty()) {
        LoadOptions opts;
        opts.progress = false;
        opts.prefetch = false;   // mapping + validation + binding only
        ModelFolder m = load_model_folder(a.model, opts);
        cfg = m.config;
        source = a.model;
        for (const TensorView& v : m.store.tensors()) file_bytes[dtype_name(v.dtype)] += v.nbytes;
    } else {
        cfg = load_config(a.config);
        source = a.config;
    }
    if (a.mtp >= 0) cfg.mtp_num_hidden_layers = a.mtp;
    ModelInfo info = compute_model_info(cfg);
    if (a.json) {
        nlohmann::ordered_json j;
        j["source"] = source;
        j.update(model_info_to_json(cfg, info));
        if (gguf) j["gguf"] = gguf_summary_to_json(*gguf);
        if (!file_bytes.empty()) j["weight_bytes_in_files"] = file_bytes;
        std::cout << j.dump(2) << "\n";
    } else {
        // --config: what bf16 weights would take; --model: the dtypes and bytes actually in the files
        std::cout << "source                " << source << "\n"
                  << model_info_to_text(cfg, info, /*bf16_size=*/a.model.empty());
        if (gguf) std::cout << gguf_summary_to_text(*gguf);
        if (!file_bytes.empty()) {
            uint64_t total = 0;
            std::string parts;
            for (const auto& [dt, n] : file_bytes) {
                total += n;
                parts += (parts.empty() ? "" : ", ") + dt + " " + std::to_string(n);
            }
            std::cout << "weights in files      " << total << " bytes (" << parts << ")\n";
        }
    }
}

void run_make_checkpoint(const MakeArgs& a, bool quiet) {
    CheckpointOptions o;
    o.seed = a.seed;
    if (a.dtype == "bf16") o.dtype = TensorDType::BF16;
    else if (a.dtype == "f32") o.dtype = TensorDType::F32;
    else throw std::runtime_error("make-checkpoint: --dtype must be bf16 or f32, got '" + a.dtype + "'");
    o.shards = a.shards;
    o.mtp_layers = a.mtp;
    o.expert_layout = a.fused ? ExpertLayout::Fused : ExpertLayout::PerExpert;
    o.progress = !quiet;
    Qwen3NextConfig cfg = load_config(a.config);
    write_random_checkpoint(cfg, a.out, o);
    const int64_t mtp = a.mtp >= 0 ? a.mtp : cfg.mtp_num_hidden_layers;
    ModelInfo info = compute_model_info(cfg, mtp);
    std::printf("wrote %s: %lld parameters (+%lld mtp), %s, %d shard%s, seed %llu\n", a.out.c_str(),
                static_cast<long long>(info.total_params), static_cast<long long>(info.mtp_params), a.dtype.c_str(),
                a.shards, a.shards == 1 ? "" : "s", static_cast<unsigned long long>(a.seed));
}

}  // namespace

void add_model_commands(Context& ctx) {
    auto info = std::make_shared<InfoArgs>();
    CLI::App* ic = ctx.app->add_subcommand(
        "info", "print layer layout, parameter counts, active parameters per token, KV and recurrent-state sizes");
    auto* src = ic->add_option_group("source");
    src->add_option("--config", info->config, "a config.json")->check(CLI::ExistingFile);
    src->add_option("--model", info->model,
                    "a model folder (config.json + safetensors; validated and bound) or a qwen3next .gguf file")
        ->check(CLI::ExistingPath);
    src->require_option(1);
    ic->add_flag("--json", info->json, "print one JSON object instead of text");
    ic->add_option("--mtp", info->mtp, "count this many MTP layers (default: config / checkpoint)")
        ->check(CLI::NonNegativeNumber);
    ic->callback([info] { run_info(*info); });

    auto mk = std::make_shared<MakeArgs>();
    CLI::App* mc = ctx.app->add_subcommand(
        "make-checkpoint", "write a deterministic random-weight model folder (config.json + safetensors)");
    mc->add_option("--config", mk->config, "config.json to instantiate (e.g. configs/models/tiny.json)")
        ->required()
        ->check(CLI::ExistingFile);
    mc->add_option("--out", mk->out, "output folder (created; previous model files replaced)")->required();
    mc->add_option("--seed", mk->seed, "random seed")->capture_default_str();
    mc->add_option("--dtype", mk->dtype, "weight dtype")->check(CLI::IsMember({"bf16", "f32"}))->capture_default_str();
    mc->add_option("--shards", mk->shards, "number of shards (> 1 writes model.safetensors.index.json)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    mc->add_option("--mtp", mk->mtp, "number of MTP layers to write (default: config's mtp_num_hidden_layers)")
        ->check(CLI::NonNegativeNumber);
    mc->add_flag("--fused-experts", mk->fused,
                 "store experts fused (mlp.experts.gate_up_proj [E,2I,H], down_proj [E,H,I]) instead of per expert");
    Context* c = &ctx;
    mc->callback([mk, c] { run_make_checkpoint(*mk, c->quiet); });

    auto qa = std::make_shared<QuantizeArgs>();
    CLI::App* qc = ctx.app->add_subcommand(
        "quantize", "write a Hugging Face Qwen3-Next folder as a qwen3next GGUF (llama.cpp's layout and metadata)");
    qc->add_option("--model", qa->model, "Hugging Face folder (config.json, safetensors, tokenizer.json)")
        ->required()
        ->check(CLI::ExistingDirectory);
    qc->add_option("--type", qa->type, "weight type of the matrices (norms, gates, conv stay f32)")
        ->check(CLI::IsMember({"q8_0", "q6_k", "q5_k_m", "q4_k_m", "bf16", "f16", "f32"}))
        ->capture_default_str();
    qc->add_option("--out", qa->out, "output .gguf file")->required();
    qc->callback([qa, c] { run_quantize(*qa, c->quiet); });
}

}  // namespace qnext::cli
