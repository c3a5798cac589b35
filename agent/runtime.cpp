#include "agent/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "agent/inprocess_backend.h"
#include "agent/openai_backend.h"
#include "model/chat_template.h"
#include "model/engine.h"
#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "model/tokenizer.h"

namespace qnext::agent {

namespace fs = std::filesystem;

fs::path default_model_dir() {
    std::vector<fs::path> candidates;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(exe.parent_path().parent_path() / "share" / "qnext" / "models" / "demo");
        candidates.push_back(exe.parent_path().parent_path() / "models" / "demo");
    }
    candidates.push_back(fs::path(QNEXT_SOURCE_DIR) / "models" / "demo");
    for (const auto& c : candidates)
        if (fs::exists(c / "config.json")) return c;
    return candidates.back();
}

fs::path make_temp_dir(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory " + tmpl);
    return tmpl;
}

Runtime::Runtime(boost::asio::io_context& io, RuntimeOptions options) : io_(io), options_(std::move(options)) {
    if (options_.backend == "openai") {
        parse_http_url(options_.base_url);  // validate early
        return;
    }
    if (options_.backend != "inprocess") throw std::runtime_error("unknown backend '" + options_.backend + "'");
    fs::path dir = options_.model_dir.value_or(default_model_dir());
    if (!std::filesystem::exists(dir)) throw std::runtime_error("model " + dir.string() + " does not exist");
    if (!is_model_path(dir))
        throw std::runtime_error("model " + dir.string() +
                                 " is neither a folder with config.json nor a GGUF file (pass --model DIR|FILE.gguf)");
    options_.model_dir = dir;
    folder_ = std::make_unique<ModelFolder>(load_model_folder(dir, !options_.quiet && isatty(STDERR_FILENO)));
    if (!folder_->has_tokenizer())
        throw std::runtime_error("model " + dir.string() + " has no tokenizer (tokenizer.json / tokenizer.ggml.*)");
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(folder_->tokenizer_path()));
    if (options_.max_context <= 0)
        options_.max_context = std::min<int64_t>(8192, folder_->config.max_position_embeddings);
    model_ = std::make_unique<Qwen3NextModel>(*folder_);
    engine_ = std::make_unique<Engine>(*model_);
}

Runtime::~Runtime() = default;

const Qwen3NextConfig& Runtime::model_config() const {
    if (!folder_) throw std::runtime_error("the " + options_.backend + " backend has no local model config");
    return folder_->config;
}

std::unique_ptr<Backend> Runtime::make_backend(bool thinking) {
    if (options_.backend == "openai")
        return std::make_unique<OpenAIBackend>(io_, options_.base_url, options_.remote_model, options_.api_key,
                                               options_.remote);
    std::optional<TemplateKind> override_kind;
    if (options_.template_override) override_kind = parse_template_name(*options_.template_override);
    TemplateKind kind = resolve_template(*options_.model_dir, override_kind);
    // Thinking mode on a model whose folder carries the Instruct template uses the Thinking template (the demo
    // model is trained on both); the hybrid template switches with enable_thinking instead.
    if (thinking && kind == TemplateKind::Instruct && !override_kind) kind = TemplateKind::Thinking;
    InProcessOptions o;
    o.template_kind = kind;
    o.thinking = thinking;
    o.max_context = options_.max_context;
    o.model_dir = *options_.model_dir;
    if (!vocab_) vocab_ = constrain::Vocabulary::from_tokenizer(*tokenizer_);
    if (!grammars_) grammars_ = std::make_shared<GrammarCache>(64);
    o.vocab = vocab_;
    o.grammars = grammars_;
    return std::make_unique<InProcessBackend>(io_, *engine_, *tokenizer_, o);
}

TemplateKind Runtime::serving_template() const {
    if (!options_.model_dir || !tokenizer_) throw std::runtime_error("serving needs the in-process backend");
    std::optional<TemplateKind> override_kind;
    if (options_.template_override) override_kind = parse_template_name(*options_.template_override);
    return resolve_template(*options_.model_dir, override_kind);
}

const Tokenizer& Runtime::tokenizer() const {
    if (!tokenizer_) throw std::runtime_error("the " + options_.backend + " backend has no local tokenizer");
    return *tokenizer_;
}

std::unique_ptr<InProcessBackend> Runtime::make_serving_backend() {
    InProcessOptions o;
    o.template_kind = serving_template();
    if (o.template_kind == TemplateKind::Instruct && !options_.template_override)
        o.thinking_template_kind = TemplateKind::Thinking;
    o.max_context = options_.max_context;
    o.model_dir = *options_.model_dir;
    if (!vocab_) vocab_ = constrain::Vocabulary::from_tokenizer(*tokenizer_);
    if (!grammars_) grammars_ = std::make_shared<GrammarCache>(64);
    o.vocab = vocab_;
    o.grammars = grammars_;
    return std::make_unique<InProcessBackend>(io_, *engine_, *tokenizer_, o);
}

std::string Runtime::describe() const {
    if (options_.backend == "openai") return "openai " + options_.base_url + " model " + options_.remote_model;
    return "model " + options_.model_dir->string() + " · context " + std::to_string(options_.max_context);
}

}  // namespace qnext::agent
