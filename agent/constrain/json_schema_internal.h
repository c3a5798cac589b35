// Helpers shared by the JSON-schema compiler files (not a public header).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/constrain/rules.h"

namespace qnext::constrain::detail {

// Largest integer magnitude generated: 16 decimal digits.
constexpr int64_t kIntCap = 9999999999999999LL;

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
