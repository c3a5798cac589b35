// Constrained decoding: public API.
//
//   auto vocab = qnext::constrain::Vocabulary::from_tokenizer(tokenizer);
//   auto g = qnext::constrain::Grammar::from_json_schema(schema, vocab);            // response_format
//   auto g = qnext::constrain::Grammar::from_tools(tools, {.choice = "auto"}, vocab); // tool calls
//   qnext::constrain::Matcher m(g);
//   loop: m.fill_next_token_bitmask(words);  sample under the mask;  m.accept_token(id);
//         stop when m.is_terminated() (a stop token was accepted).
//
// Engine design: see engine.h (byte-level pushdown automaton, on-the-fly determinised, with a
// per-frame context-independent token-mask cache). JSON-schema coverage: see json_schema.h.
// Tool-call structure (Qwen3 hermes format): see tool_grammar.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/constrain/vocabulary.h"

namespace qnext::constrain {

class Engine;

// Unsupported or invalid schema: names the keyword and the JSON pointer of the offending location.
class SchemaError : public std::runtime_error {
public:
    SchemaError(const std::string& path, const std::string& keyword, const std::string& what)
        : std::runtime_error("schema error at '" + (path.empty() ? std::string("#") : path) + "' (" + keyword +
                             "): " + what),
          path_(path), keyword_(keyword) {}
    const std::string& path() const { return path_; }
    const std::string& keyword() const { return keyword_; }

private:
    std::string path_, keyword_;
};

// The tool-call syntax: Qwen3 / Qwen3-Next hermes JSON, or Qwen3.5's XML (see tool_grammar.h).
enum class ToolFormat { Json, Xml };

struct ToolCallOptions {
    // "auto" (free text, optionally followed by calls), "required" (>= 1 call, no text first),
    // "none" (text only; <tool_call> masked out) or the name of one declared tool (exactly one call).
    std::string choice = "auto";
    bool parallel_tool_calls = true;   // false: at most one call
    bool thinking = false;             // output starts inside <think>: free until </think>, then "\n\n"
    ToolFormat format = ToolFormat::Json;
};

struct SchemaOptions {
    bool thinking = false;             // as in ToolCallOptions
};

class Grammar {
public:
    // A JSON value matching `schema` (JSON Schema, draft 2020-12 subset; see json_schema.h).
    static Grammar from_json_schema(const nlohmann::ordered_json& schema, VocabularyPtr vocab,
                                    const SchemaOptions& opts = {});
    // Qwen3 tool calls for `tools` (OpenAI format: [{"type": "function", "function": {"name",
    // "description", "parameters"}}] or bare {"name", "parameters"} objects).
    static Grammar from_tools(const nlohmann::ordered_json& tools, const ToolCallOptions& opts, VocabularyPtr vocab);
    // Builds the tables that depend only on the vocabulary and are shared by all its grammars (the
    // per-state string table behind length-bounded strings: one walk of the vocabulary per state of a
    // JSON string, ~10 ms for Qwen3's 151k tokens), like xgrammar's TokenizerInfo. Optional: otherwise
    // the first grammar that needs them pays for them. Call it once after loading the tokenizer.
    static void prepare_vocabulary(const VocabularyPtr& vocab);
    // Free text (any bytes, no added tokens) until a stop token; with thinking: free before </think>.
    static Grammar free_text(VocabularyPtr vocab, bool thinking = false);

    const Vocabulary& vocab() const;
    // Statistics for benchmarks: grammar rules/states, cached configurations, cache memory.
    size_t num_rules() const;
    size_t num_states() const;
    size_t cache_bytes() const;

    struct Impl;
    explicit Grammar(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    const std::shared_ptr<Impl>& impl() const { return impl_; }

private:
    std::shared_ptr<Impl> impl_;
};

// Per-request parser state. Cheap to create and copy (fork); many matchers may share one Grammar
// (from several threads: the shared caches are locked).
class Matcher {
public:
    explicit Matcher(Grammar grammar);
    explicit Matcher(const std::shared_ptr<const Grammar>& grammar) : Matcher(*grammar) {}

    size_t mask_words() const;   // ceil(vocab / 32)
    // Bit i of words[i/32] set = token i allowed next. Writes `n_words` words (>= mask_words();
    // ids beyond the vocabulary, e.g. padded model rows, are never allowed). After termination
    // nothing is allowed.
    void fill_next_token_bitmask(uint32_t* words, size_t n_words) const;
    void fill_next_token_bitmask(uint32_t* words) const { fill_next_token_bitmask(words, mask_words()); }
    // Advances by one token. Returns false (state unchanged) if the token is not allowed.
    bool accept_token(int32_t id);
    // Undoes the last n accepted tokens (n <= num_accepted()); for speculative decoding.
    void rollback(size_t n);
    size_t num_accepted() const { return history_.size() - 1; }
    // A stop token (the tokenizer's eos ids, e.g. <|im_end|>) has been accepted.
    bool is_terminated() const { return terminated_at_ != 0 && terminated_at_ == history_.size(); }
    // The structure is complete: the mask now allows the stop tokens (and possibly more text).
    bool can_terminate() const;
    bool can_stop() const { return can_terminate(); }
    // A token on a shortest path to completion (a single-byte token, an added token of the grammar,
    // or a stop token when complete); -1 if none. For tests/benchmarks that need every sample to end.
    int32_t closing_token() const;
    // Accepts a string of bytes (no added tokens), e.g. a forced prefix; false if not allowed.
    bool accept_bytes(const std::string& bytes);
    void reset();

private:
    Grammar grammar_;
    std::vector<int32_t> history_;   // configuration after each accepted token; [0] = initial
    size_t terminated_at_ = 0;       // history size right after the stop token (0 = not terminated)
};

}  // namespace qnext::constrain
