#include "agent/constrain/grammar.h"

#include <mutex>

#include "agent/constrain/engine.h"
#include "agent/constrain/json_schema.h"
#include "agent/constrain/tool_grammar.h"

namespace qnext::constrain {

struct Grammar::Impl {
    Impl(CompiledRules rules, VocabularyPtr v) : vocab(v), engine(std::move(rules), std::move(v)) {}
    VocabularyPtr vocab;
    std::mutex mu;   // guards the engine's lazily grown tables
    Engine engine;
};

namespace {
Grammar finish(RuleSet& rules, int32_t root, VocabularyPtr vocab) {
    auto impl = std::make_shared<Grammar::Impl>(compile_rules(rules, root), std::move(vocab));
    impl->engine.precompute();
    return Grammar(std::move(impl));
}
}  // namespace

void Grammar::prepare_vocabulary(const VocabularyPtr& vocab) { Engine::prepare_vocabulary(vocab); }

Grammar Grammar::from_json_schema(const nlohmann::ordered_json& schema, VocabularyPtr vocab, const SchemaOptions& opts) {
    RuleSet rules;
    JsonSchemaCompiler compiler(rules);
    const int32_t value = compiler.compile(schema, schema, "");
    const int32_t root = rules.declare("root");
    Nfa& nfa = rules.nfa(root);
    int32_t cur = opts.thinking ? emit_thinking_prefix(rules, nfa, nfa.start, *vocab) : nfa.start;
    nfa.call(cur, value, nfa.final_state);
    return finish(rules, root, std::move(vocab));
}

Grammar Grammar::from_tools(const nlohmann::ordered_json& tools, const ToolCallOptions& opts, VocabularyPtr vocab) {
    RuleSet rules;
    JsonSchemaCompiler compiler(rules);
    const int32_t root = add_tool_rules(rules, compiler, parse_tools(tools), opts, *vocab);
    return finish(rules, root, std::move(vocab));
}

Grammar Grammar::free_text(VocabularyPtr vocab, bool thinking) {
    RuleSet rules;
    const int32_t text = add_text_rule(rules, "");
    const int32_t root = rules.declare("root");
    Nfa& nfa = rules.nfa(root);
    int32_t cur = thinking ? emit_thinking_prefix(rules, nfa, nfa.start, *vocab) : nfa.start;
    nfa.call(cur, text, nfa.final_state);
    return finish(rules, root, std::move(vocab));
}

const Vocabulary& Grammar::vocab() const { return *impl_->vocab; }
size_t Grammar::num_rules() const { return impl_->engine.rules().rules.size(); }
size_t Grammar::num_states() const { return impl_->engine.rules().num_states(); }
size_t Grammar::cache_bytes() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->engine.cache_bytes();
}

Matcher::Matcher(Grammar grammar) : grammar_(std::move(grammar)) { reset(); }

void Matcher::reset() {
    history_.assign(1, grammar_.impl()->engine.initial());
    terminated_at_ = 0;
}

size_t Matcher::mask_words() const { return grammar_.vocab().mask_words(); }

void Matcher::fill_next_token_bitmask(uint32_t* words, size_t n_words) const {
    auto& impl = *grammar_.impl();
    if (is_terminated()) {
        std::fill(words, words + n_words, 0u);
        return;
    }
    std::lock_guard<std::mutex> lock(impl.mu);
    impl.engine.fill_mask(history_.back(), words, n_words);
}

bool Matcher::accept_token(int32_t id) {
    if (is_terminated()) return false;
    auto& impl = *grammar_.impl();
    std::lock_guard<std::mutex> lock(impl.mu);
    const int32_t cur = history_.back();
    if (impl.vocab->is_stop(id)) {
        if (!impl.engine.can_complete(cur)) return false;
        history_.push_back(Engine::kDead);
        terminated_at_ = history_.size();
        return true;
    }
    const int32_t next = impl.engine.advance_token(cur, id);
    if (next == Engine::kDead) return false;
    history_.push_back(next);
    return true;
}

bool Matcher::accept_bytes(const std::string& bytes) {
    if (is_terminated()) return false;
    auto& impl = *grammar_.impl();
    std::lock_guard<std::mutex> lock(impl.mu);
    int32_t c = history_.back();
    for (unsigned char b : bytes) {
        c = impl.engine.step(c, b);
        if (c == Engine::kDead) return false;
    }
    history_.push_back(c);
    return true;
}

void Matcher::rollback(size_t n) {
    if (n > num_accepted()) throw std::runtime_error("constrain: rollback past the start");
    history_.resize(history_.size() - n);
    if (terminated_at_ > history_.size()) terminated_at_ = 0;
}

bool Matcher::can_terminate() const {
    if (is_terminated()) return false;
    std::lock_guard<std::mutex> lock(grammar_.impl()->mu);
    return grammar_.impl()->engine.can_complete(history_.back());
}

}  // namespace qnext::constrain

namespace qnext::constrain {

int32_t Matcher::closing_token() const {
    if (is_terminated()) return -1;
    auto& impl = *grammar_.impl();
    std::lock_guard<std::mutex> lock(impl.mu);
    if (impl.engine.can_complete(history_.back()))
        return impl.vocab->stop_ids().empty() ? -1 : impl.vocab->stop_ids().front();
    std::vector<int> path = impl.engine.shortest_completion(history_.back());
    if (path.empty()) return -1;
    if (path[0] >= kByteSymbols) return impl.engine.rules().token_terminals[static_cast<size_t>(path[0] - kByteSymbols)];
    return impl.vocab->byte_token(static_cast<uint8_t>(path[0]));
}

}  // namespace qnext::constrain
