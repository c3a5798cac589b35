#include "agent/grammar_cache.h"

#include <stdexcept>

namespace qnext::agent {

constrain::Grammar GrammarCache::get(const GenerationRequest& req, bool xml, const constrain::VocabularyPtr& vocab) {
    const bool free = req.tools.empty() || req.tool_choice == "none";
    if (!free && req.response_schema)
        throw std::invalid_argument("response_format with tools is not supported: pass tool_choice \"none\" or no tools");
    std::string key = free ? std::string("free") : req.tools.dump() + '\n' + req.tool_choice;
    if (free && req.response_schema) key = "schema\n" + req.response_schema->dump();
    key += req.parallel_tool_calls ? "|p" : "|1";
    key += req.thinking ? "|t" : "|i";
    key += xml ? "|x" : "|j";
    {
        std::lock_guard lk(mu_);
        auto it = index_.find(key);
        if (it != index_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            return it->second->second;
        }
    }
    // Compiled without the lock: a slow schema must not hold up requests whose grammar is cached. Two threads
    // missing the same key both compile it; the second insert is dropped.
    constrain::Grammar g = [&] {
        if (free && req.response_schema) {
            constrain::SchemaOptions so;
            so.thinking = req.thinking;
            return constrain::Grammar::from_json_schema(*req.response_schema, vocab, so);
        }
        if (free) return constrain::Grammar::free_text(vocab, req.thinking);
        constrain::ToolCallOptions to;
        to.choice = req.tool_choice;
        to.parallel_tool_calls = req.parallel_tool_calls;
        to.thinking = req.thinking;
        to.format = xml ? constrain::ToolFormat::Xml : constrain::ToolFormat::Json;
        return constrain::Grammar::from_tools(req.tools, to, vocab);   // ordered: properties in declared order
    }();
    std::lock_guard lk(mu_);
    if (!index_.count(key)) {
        lru_.emplace_front(key, g);
        index_[key] = lru_.begin();
        while (lru_.size() > capacity_) {
            index_.erase(lru_.back().first);
            lru_.pop_back();
        }
    }
    return g;
}

size_t GrammarCache::size() const {
    std::lock_guard lk(mu_);
    return lru_.size();
}

}  // namespace qnext::agent
