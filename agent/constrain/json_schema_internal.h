// Helpers shared by the JSON-schema compiler files (not a public header).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/constrain/rules.h"

namespace qnext::constrain::detail {

// Largest integer magnitude generated: 16 decimal digits.
constexpr int64_t kIntCap = 9999999999999999LL;

// Limits on what a schema may ask for (hostile schemas from MCP servers, tool files and HTTP requests end in a
// clear error naming the limit and the JSON pointer, in well under a second; every real tool schema of the test
// corpora is far below them).
constexpr size_t kMaxPatternBytes = 4096;        // a `pattern` (or format regex)
constexpr size_t kMaxLiteralBytes = 65536;       // one const / enum value, as JSON text
constexpr size_t kMaxEnumValues = 4096;
constexpr size_t kMaxProperties = 1024;          // declared properties of one object
constexpr size_t kMaxGrammarStates = 1u << 20;   // NFA states of all rules together

// One JSON string character (raw UTF-8 except '"', '\\' and controls; escapes \" \\ \/ \b \f \n \r
// \t and \uXXXX without surrogates).
void emit_plain_string_char(Nfa& nfa, int32_t from, int32_t to);
// A whole JSON string of such characters: '"' char* '"'.
void emit_plain_string(Nfa& nfa, int32_t from, int32_t to);
// Decimal integers in [lo, hi] (clamped to +-kIntCap), no leading zeros, no "-0".
void emit_int_range(Nfa& nfa, int32_t from, int32_t to, int64_t lo, int64_t hi);
// Regex (regex.h subset) for a JSON-schema format, nullptr if the format is not supported.
const char* format_regex(const std::string& format);
// json.dumps(value) layout: ", " and ": " separators, non-ASCII kept raw.
std::string json_literal(const nlohmann::ordered_json& value);

}  // namespace qnext::constrain::detail
