// JSON Schema -> grammar rules.
//
// Output format (whitespace policy): exactly Python json.dumps' default layout, the one the Qwen chat
// template's tojson uses: `{"a": 1, "b": [1, 2]}` - one space after ':' and ',', none elsewhere. No
// runaway whitespace is possible. Properties are emitted in declaration order; optional ones may be
// skipped. Numbers are bounded in length (<= 16 integer digits, <= 15 fraction digits).
//
// Keywords enforced: type (incl. unions and "null"), nullable (OpenAPI), properties, required,
// additionalProperties (false / true / schema; when absent no extra keys are generated - stricter but
// always valid; extra keys are ASCII word strings that differ from the declared names), enum, const,
// anyOf, oneOf (when the branches are provably disjoint: different types, or objects that differ in a
// required key or a const/enum discriminator; otherwise an error), allOf (merged: objects, and
// compatible scalar keywords), items, prefixItems, minItems, maxItems, minLength, maxLength, pattern
// (regex subset, see regex.h), format (date, time, date-time, uuid, email, uri, ipv4, hostname),
// minimum / maximum / exclusiveMinimum / exclusiveMaximum (any bound with <= 15 fraction digits, compared
// exactly as the decimal the schema spells), minProperties / maxProperties (declared and additional keys),
// $ref to "#" / "#/..." ($defs, definitions, any pointer) including recursion.
// Ignored (annotations): title, description, default, examples, $schema, $id, $comment, deprecated,
// readOnly, writeOnly, x-* extensions, uniqueItems: false.
// Anything else (not, if/then/else, patternProperties, multipleOf, uniqueItems: true, contains,
// dependentRequired, propertyNames, ... or unknown keywords) is a SchemaError naming keyword and path.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/constrain/rules.h"

namespace qnext::constrain {

class JsonSchemaCompiler {
public:
    explicit JsonSchemaCompiler(RuleSet& rules) : rules_(rules) {}
    // Adds the rules for values matching `schema` and returns the rule id. `root_doc` is the document
    // $refs resolve against; `path` is the JSON pointer of `schema` in it (used in errors). Identical
    // sub-schemas (e.g. every plain string) share one rule, also across calls (tool sets).
    int32_t compile(const nlohmann::ordered_json& schema, const nlohmann::ordered_json& root_doc,
                    const std::string& path = "");

private:
    using json = nlohmann::ordered_json;
    int32_t node(const json& schema, const std::string& path);
    int32_t build(const json& schema, const std::string& path);
    int32_t ref(const std::string& pointer, const std::string& path);
    void emit_type(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& type,
                   const std::string& path);
    void emit_object(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path);
    void emit_array(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path);
    void emit_string(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path);
    void emit_number(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path, bool integer);
    json merge_all(const std::vector<json>& parts, const std::string& path);
    json resolve(const json& s, const std::string& path);
    int32_t string_rule();
    int32_t any_rule();
    int32_t counted_string_rule(int32_t min, int32_t max);

    RuleSet& rules_;
    const json* root_ = nullptr;
    std::map<std::string, int32_t> memo_;
    std::map<std::string, int32_t> refs_;
    std::map<std::pair<int32_t, int32_t>, int32_t> counted_rules_;
    int32_t string_rule_ = -1, any_rule_ = -1;
};

}  // namespace qnext::constrain
