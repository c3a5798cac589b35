// Grammar IR: a set of rules, each a byte-level automaton whose edges are either symbols or calls
// of other rules (a recursive transition network = a pushdown automaton). Symbols 0..255 are bytes;
// symbol 256+k is "token terminal" k, an added token (e.g. <tool_call>) that must be produced as
// that single token, never spelled out in bytes.
//
// Rules are written as NFAs (RuleSet / Nfa) by the front ends (JSON schema, regex, tool calls) and
// compiled by compile_rules() into per-rule DFAs over symbols + call labels (subset construction),
// with useless states pruned, left recursion rejected and FOLLOW byte sets computed (used by the
// mask cache to discard tokens that could never continue after a rule ends).
#pragma once
#include <bitset>
#include <deque>
#include <map>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qnext::constrain {

constexpr int kByteSymbols = 256;

struct SymRange {
    uint16_t lo, hi;   // inclusive symbol range
    int32_t to;
};
struct Call {
    int32_t rule;
    int32_t to;        // state to continue in after the called rule completes
    bool operator<(const Call& o) const { return rule != o.rule ? rule < o.rule : to < o.to; }
    bool operator==(const Call& o) const = default;
};

// One rule under construction (a Thompson-style NFA with a single final state).
class Nfa {
public:
    Nfa() { start = add_state(); final_state = add_state(); }
    int32_t add_state() {
        edges.emplace_back();
        eps.emplace_back();
        calls.emplace_back();
        return static_cast<int32_t>(edges.size()) - 1;
    }
    void range(int32_t from, int lo, int hi, int32_t to) {
        edges[static_cast<size_t>(from)].push_back(
            {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi), to});
    }
    void epsilon(int32_t from, int32_t to) { eps[static_cast<size_t>(from)].push_back(to); }
    void call(int32_t from, int32_t rule, int32_t to) { calls[static_cast<size_t>(from)].push_back({rule, to}); }
    // Bytes of `s` in sequence from `from`; returns the state after the last byte.
    int32_t literal(int32_t from, std::string_view s);
    // A call from `from` to a fresh state; returns that state.
    int32_t call_next(int32_t from, int32_t rule) {
        int32_t t = add_state();
        call(from, rule, t);
        return t;
    }
    size_t num_states() const { return edges.size(); }

    int32_t start, final_state;
    std::vector<std::vector<SymRange>> edges;
    std::vector<std::vector<int32_t>> eps;
    std::vector<std::vector<Call>> calls;
};

// A rule that is exactly a JSON string with a length bound: '"', between `min` and `max` (-1: no upper
// bound) characters in the syntax of the shared "string" rule, '"'. The engine derives the mask entries of
// its per-position states from one vocabulary-wide table instead of walking the trie once per position
// (see Engine::compute_counted_entries).
struct CountedString {
    int32_t min = 0, max = -1;
};

class RuleSet {
public:
    // Declares a rule (so that it can be called before it is defined, e.g. for recursion).
    int32_t declare(std::string name);
    Nfa& nfa(int32_t rule) { return rules_[static_cast<size_t>(rule)]; }
    const Nfa& nfa(int32_t rule) const { return rules_[static_cast<size_t>(rule)]; }
    const std::string& name(int32_t rule) const { return names_[static_cast<size_t>(rule)]; }
    size_t size() const { return rules_.size(); }
    // NFA states of all rules together (the grammar's size before determinization).
    size_t total_states() const {
        size_t n = 0;
        for (const auto& r : rules_) n += r.num_states();
        return n;
    }
    // Symbol for an added token, allocated on first use.
    int token_symbol(int32_t token_id);
    const std::vector<int32_t>& token_terminals() const { return tokens_; }
    void mark_counted_string(int32_t rule, CountedString c) { counted_[rule] = c; }
    const CountedString* counted_string(int32_t rule) const {
        auto it = counted_.find(rule);
        return it == counted_.end() ? nullptr : &it->second;
    }

private:
    std::deque<Nfa> rules_;   // deque: references stay valid while rules are added
    std::map<int32_t, CountedString> counted_;
    std::vector<std::string> names_;
    std::vector<int32_t> tokens_;
};

struct DfaState {
    std::vector<SymRange> edges;   // sorted, disjoint
    std::vector<Call> calls;       // sorted by rule
    bool accept = false;
};
struct DfaRule {
    std::string name;
    std::vector<DfaState> states;  // state 0 is the start
    std::optional<CountedString> counted;
};

struct CompiledRules {
    std::vector<DfaRule> rules;
    int32_t root = 0;
    std::vector<int32_t> token_terminals;    // symbol 256+k -> token id
    std::vector<std::bitset<256>> follow;    // per rule: bytes that may come right after it ends
    size_t num_symbols() const { return kByteSymbols + token_terminals.size(); }
    size_t num_states() const;
};

// Throws std::runtime_error when the language of `root` is empty or a rule is left-recursive.
CompiledRules compile_rules(const RuleSet& rules, int32_t root);

}  // namespace qnext::constrain
