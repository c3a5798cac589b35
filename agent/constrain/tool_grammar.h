// Grammar of Qwen3 tool calls (hermes format, as rendered by all three Qwen3-Next templates):
//
//   [thinking: any text, then the </think> token, then "\n\n"]
//   auto:      TEXT [CALL ("\n" CALL)*]     (TEXT: free text; never the text "<tool_call>")
//   required:  CALL ("\n" CALL)*
//   NAME:      CALL restricted to tool NAME, exactly one
//   none:      TEXT                          (the <tool_call> token is never allowed)
//   parallel_tool_calls=false: at most one CALL.
//   CALL = <tool_call> "\n{\"name\": \"" NAME "\", \"arguments\": " ARGS(NAME) "}\n" </tool_call>
// where <tool_call> (151657), </tool_call> (151658) and </think> (151668) must be produced as their
// single added tokens; ARGS is the tool's parameter schema (json_schema.h layout).
//
// ToolFormat::Xml (Qwen3.5 / Qwen3.6), same structure with
//   CALL = <tool_call> "\n<function=" NAME ">\n" PARAM* "</function>\n" </tool_call>
//   PARAM = "<parameter=" P ">\n" VALUE "\n</parameter>\n"
// for the tool's declared properties in declaration order, every required one present. VALUE is raw text
// (never containing "\n</parameter>") for a property of type "string" (one of the literals for a string enum
// or const), JSON matching the property's schema otherwise. A string property with pattern, format or length
// bounds is refused (SchemaError): raw text cannot be held to them yet.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/constrain/grammar.h"
#include "agent/constrain/json_schema.h"
#include "agent/constrain/rules.h"

namespace qnext::constrain {

struct ToolSpec {
    std::string name;
    nlohmann::ordered_json parameters;
};
// Accepts OpenAI tools ([{"type": "function", "function": {...}}]) or bare {"name", "parameters"}.
std::vector<ToolSpec> parse_tools(const nlohmann::ordered_json& tools);

// Free text: any bytes except a spelled-out `forbidden` (if non-empty); nullable.
int32_t add_text_rule(RuleSet& rules, const std::string& forbidden);
// Prefix for thinking mode: any bytes, then </think>, then "\n\n". Returns the state reached in `nfa`.
int32_t emit_thinking_prefix(RuleSet& rules, Nfa& nfa, int32_t from, const Vocabulary& vocab);
// XML format: whether a property's value is raw text (its schema's type is exactly "string", or it is an
// untyped enum / const of strings).
bool xml_raw_string(const nlohmann::ordered_json& property_schema);
// XML format: per tool, the names of its raw-text (string) parameters (what the call parser keeps as strings).
std::map<std::string, std::set<std::string>> xml_string_parameters(const std::vector<ToolSpec>& tools);
// Root rule for the tool-call structure.
int32_t add_tool_rules(RuleSet& rules, JsonSchemaCompiler& schemas, const std::vector<ToolSpec>& tools,
                       const ToolCallOptions& opts, const Vocabulary& vocab);

}  // namespace qnext::constrain
