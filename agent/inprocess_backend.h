// The in-process backend: renders the conversation with the model's chat template, tokenizes it, and runs it
// on the shared engine with the tool-call structure enforced by constrained decoding.
//
// State reuse. A session keeps its engine sequence between turns. Each generation prefills only the tokens
// after the longest common prefix of the new prompt and the tokens already in the state. When the prompt
// diverges inside the kept tokens (an edited or regenerated turn, or the Thinking template dropping earlier
// reasoning once a new user message arrives), the state resumes from the nearest checkpoint at or before the
// divergence: a snapshot is taken at every turn boundary (the end of the rendered history, just before the
// assistant's generation prompt), so at worst the last assistant message is recomputed, never the whole
// history.
#pragma once
#include <atomic>
#include <map>
#include <optional>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/backend.h"
#include "agent/constrain/grammar.h"
#include "agent/grammar_cache.h"
#include "model/chat_encode.h"
#include "model/engine.h"
#include "model/tokenizer.h"

namespace qnext::agent {

struct InProcessOptions {
    TemplateKind template_kind = TemplateKind::Instruct;
    // The template of requests with thinking on, when it differs (a server serving both modes); unset: the same.
    std::optional<TemplateKind> thinking_template_kind;
    bool thinking = false;           // hybrid template: enable_thinking
    int64_t max_context = 8192;      // tokens reserved for the session's sequence
    size_t max_checkpoints = 32;     // oldest dropped first (the earliest is always kept)
    std::filesystem::path model_dir;
    // The tokenizer's constrained-decoding vocabulary (and its string table), shared by every backend of one
    // loaded model; null: the backend builds its own.
    constrain::VocabularyPtr vocab;
    // Compiled grammars shared by the backends of one model (thread-safe); null: the backend keeps its own.
    std::shared_ptr<GrammarCache> grammars;
};

class InProcessBackend : public Backend {
public:
    InProcessBackend(boost::asio::io_context& io, Engine& engine, const Tokenizer& tokenizer, InProcessOptions options);
    ~InProcessBackend() override;

    std::string name() const override { return "inprocess:" + options_.model_dir.string(); }
    void async_generate(const GenerationRequest& request, EventHandler on_event, DoneHandler on_done) override;
    void cancel() override;
    void save_state(std::ostream& out) const override;
    void load_state(std::istream& in) override;

    // Introspection (tests, stats).
    size_t num_checkpoints() const;
    const constrain::Vocabulary& vocabulary() const { return *vocab_; }
    int64_t cached_tokens() const { return static_cast<int64_t>(tokens_.size()); }
    // Drops the kept state and checkpoints: the next generation prefills everything (reuse off).
    void forget();
    void set_reuse(bool on) { reuse_ = on; }

    // The prompt text this backend renders for a request (exposed for tests and `--dump-prompt`).
    RenderedChat render(const GenerationRequest& request, bool add_generation_prompt) const;
    TemplateKind template_for(const GenerationRequest& request) const {
        return request.thinking && options_.thinking_template_kind ? *options_.thinking_template_kind
                                                                   : options_.template_kind;
    }
    // The tokens the sequence state holds (the prefix a request can resume from without recomputation).
    const std::vector<int32_t>& tokens() const { return tokens_; }
    // The output grammar of a request (compiled once per tool set / schema / mode, then cached). Thread-safe:
    // a server compiles it on a worker thread before the request reaches the backend.
    constrain::Grammar grammar_for(const GenerationRequest& request) const;
    bool busy() const { return busy_; }
    // The token ids generation feeds for that prompt: only the template's markup becomes control tokens;
    // message contents, tool results, schemas and call arguments are encoded as plain text.
    std::vector<int32_t> prompt_ids(const GenerationRequest& request, bool add_generation_prompt) const;

    struct Checkpoint {
        int64_t pos = 0;
        std::shared_ptr<SequenceState::Snapshot> snap;
    };
    class Controller;

private:
    friend class Controller;
    void on_generation_done(const std::vector<int32_t>& prompt, const std::vector<int32_t>& fed,
                            bool state_consistent, std::vector<Checkpoint> new_checkpoints, int n_calls);

    boost::asio::io_context& io_;
    Engine& engine_;
    const Tokenizer& tok_;
    InProcessOptions options_;
    SeqId seq_ = 0;
    bool reuse_ = true;
    bool busy_ = false;
    // Keeps the io_context running while the engine thread generates (its results arrive by post()).
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;

    std::vector<int32_t> tokens_;            // tokens the sequence state holds, in order
    bool consistent_ = true;                 // the state holds exactly tokens_ (false after errors)
    std::vector<Checkpoint> checkpoints_;    // ascending pos, all <= tokens_.size()
    std::shared_ptr<std::atomic<bool>> cancel_flag_;
    constrain::VocabularyPtr vocab_;
    std::shared_ptr<GrammarCache> grammars_;
    int next_call_id_ = 0;                   // tool-call ids are unique within the session
};

}  // namespace qnext::agent
