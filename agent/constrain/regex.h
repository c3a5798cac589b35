// Regex subset -> NFA fragments, for JSON-schema `pattern` and `format`.
//
// The regex describes the *decoded* string; the fragments produced here match its JSON encoding
// (inside the quotes): '"', '\\' and control characters appear as escapes (\" \\ \n \t \r \b \f,
// \u00XX), every other code point as raw UTF-8 (surrogates never). Matching is over bytes, so a
// character may be split across tokens.
//
// Supported subset (ECMAScript syntax): literals (any UTF-8), '.', classes [...] with ranges and
// negation, escapes \d \D \w \W \s \S \n \r \t \f \v \0 \xHH \uHHHH and escaped punctuation, groups
// (...) and (?:...), alternation |, quantifiers * + ? {n} {n,} {n,m} (lazy '?' accepted: same
// language; bounds up to 1000), '^' at the very start and '$' at the very end. Without them the
// pattern matches anywhere (JSON-schema semantics: an unanchored search). Rejected with an error:
// look-around, backreferences, \b \B, \p{..}, named groups, possessive quantifiers, inner anchors.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/constrain/rules.h"

namespace qnext::constrain {

// A set of Unicode code points as sorted disjoint inclusive ranges.
class CodepointSet {
public:
    CodepointSet() = default;
    CodepointSet(uint32_t lo, uint32_t hi) { add(lo, hi); }
    void add(uint32_t lo, uint32_t hi);
    void add(const CodepointSet& o) { for (auto [lo, hi] : o.ranges_) add(lo, hi); }
    CodepointSet negated() const;   // within [0, 0x10FFFF]
    bool empty() const { return ranges_.empty(); }
    const std::vector<std::pair<uint32_t, uint32_t>>& ranges() const { return ranges_; }

private:
    std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

// Emits "one character from `set`, JSON-encoded" between states from and to.
void emit_json_char(Nfa& nfa, int32_t from, int32_t to, const CodepointSet& set);
// Emits "one character from `set`" as raw UTF-8 (no JSON escaping); surrogates excluded.
void emit_utf8_char(Nfa& nfa, int32_t from, int32_t to, const CodepointSet& set);

struct Regex {
    enum class Kind { Set, Seq, Alt, Repeat };
    Kind kind = Kind::Seq;
    CodepointSet set;           // Set
    std::vector<Regex> kids;    // Seq, Alt, Repeat (one kid)
    int min = 0, max = 0;       // Repeat; max < 0 = unbounded
};

// Parses `pattern` (see the subset above), applying search semantics for missing anchors.
// Throws std::invalid_argument with a message naming the unsupported construct.
Regex parse_regex(std::string_view pattern);
// Emits the JSON-encoded language of `re` between from and to.
void emit_regex_json(Nfa& nfa, int32_t from, int32_t to, const Regex& re);

}  // namespace qnext::constrain
