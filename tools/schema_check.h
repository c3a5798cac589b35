// Argument checking for built-in and user tools against their JSON-Schema declarations, so that a call the
// constrained decoder did not enforce (unconstrained sampling, a remote backend) gets a precise error text
// instead of undefined behaviour. Covers the keywords tool schemas use: type, properties, required,
// additionalProperties, enum, const, minimum/maximum (+ exclusive), minLength/maxLength (code points),
// pattern (RE2), items, minItems/maxItems, anyOf/oneOf/allOf. Other keywords ($ref, format, ...) are accepted
// without checking; MCP servers validate their own arguments.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace qnext::tools {

// Returns "" when `value` satisfies `schema`, else one message naming the first offending location, e.g.
// "arguments.start_line: expected integer, got string".
std::string check_against_schema(const nlohmann::ordered_json& schema, const nlohmann::ordered_json& value,
                                 const std::string& where = "arguments");

}  // namespace qnext::tools
