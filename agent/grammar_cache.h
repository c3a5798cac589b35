// Compiled output grammars (tool-call structure, response_format schemas, free text), keyed by what they depend
// on, shared by every backend of one loaded model and safe to use from any thread: a server compiles a request's
// grammar on a worker thread before the request takes a slot, and the backend then finds it here. Least recently
// used entries are dropped beyond the capacity.
#pragma once
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "agent/backend.h"
#include "agent/constrain/grammar.h"

namespace qnext::agent {

class GrammarCache {
public:
    explicit GrammarCache(size_t capacity = 64) : capacity_(capacity) {}

    // The grammar of `req` (tools + tool_choice + parallel + thinking, or its response schema, or free text) in
    // the given call syntax. Throws constrain::SchemaError / std::runtime_error for schemas it refuses and
    // std::invalid_argument for response_format combined with tools.
    constrain::Grammar get(const GenerationRequest& req, bool xml_calls, const constrain::VocabularyPtr& vocab);
    size_t size() const;

private:
    size_t capacity_;
    mutable std::mutex mu_;
    std::list<std::pair<std::string, constrain::Grammar>> lru_;   // front = most recent
    std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

}  // namespace qnext::agent
