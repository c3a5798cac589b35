// Runtime: what `qnext run` and `qnext chat` set up before the loop starts: the model (in-process engine,
// shared by every session) or a remote endpoint, the tool registry and the workspace.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/backend.h"
#include "model/chat_template.h"
#include "model/config.h"

namespace qnext {
class Engine;
class Tokenizer;
class Qwen3NextModel;
struct ModelFolder;
}  // namespace qnext
namespace qnext::constrain {
class Vocabulary;
}  // namespace qnext::constrain

namespace qnext::agent {

class InProcessBackend;
class GrammarCache;

// The model used when --model is not given: the demo model (models/demo) of the installed share dir, of the
// build tree beside the binary, or of the source tree, whichever has a config.json first (else the last).
std::filesystem::path default_model_dir();

// A new private directory under the system temp dir, named <prefix>-XXXXXX (mkdtemp). Throws when it fails.
std::filesystem::path make_temp_dir(const std::string& prefix);

struct RuntimeOptions {
    std::optional<std::filesystem::path> model_dir;  // default: default_model_dir()
    std::string backend = "inprocess";               // inprocess | openai
    std::string base_url;                            // openai: e.g. http://127.0.0.1:8000/v1
    std::string remote_model;                        // openai: the served model name
    std::string api_key;                             // openai: bearer token (default: $OPENAI_API_KEY)
    RemoteOptions remote;                            // openai: size caps and timeouts
    std::optional<std::string> template_override;    // instruct | thinking | hybrid
    int64_t max_context = 0;                         // tokens reserved per session (in-process);
                                                     // 0 = min(8192, the model's max_position_embeddings)
    bool quiet = false;
};

class Runtime {
public:
    Runtime(boost::asio::io_context& io, RuntimeOptions options);
    ~Runtime();

    // A backend for one session. `thinking` selects the Thinking template (or enable_thinking for hybrid).
    std::unique_ptr<Backend> make_backend(bool thinking);
    // A backend for a server slot (in-process only): the model's template for requests without thinking, and for
    // requests with thinking on the Thinking template when the model's own is Instruct (the hybrid and Qwen3.5
    // templates switch with enable_thinking).
    std::unique_ptr<InProcessBackend> make_serving_backend();
    // The template make_serving_backend renders with (for thinking defaults).
    TemplateKind serving_template() const;
    const Tokenizer& tokenizer() const;
    const RuntimeOptions& options() const { return options_; }
    const Qwen3NextConfig& model_config() const;  // in-process backend only
    std::string describe() const;  // one line: model dir / endpoint, template, context

private:
    boost::asio::io_context& io_;
    RuntimeOptions options_;
    std::unique_ptr<ModelFolder> folder_;
    std::unique_ptr<Qwen3NextModel> model_;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::unique_ptr<Engine> engine_;
    std::shared_ptr<const constrain::Vocabulary> vocab_;
    std::shared_ptr<GrammarCache> grammars_;                 // shared by all backends  // built on the first make_backend, shared by all backends
};

}  // namespace qnext::agent
