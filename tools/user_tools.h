// User tools: declared in a JSON file with an argv template that is expanded WITHOUT a shell, e.g.
//   {"tools": [{"name": "word_count", "description": "...", "parameters": {JSON Schema},
//               "argv": ["wc", "-w", "--", "{path}"], "stdin": "{text}"?, "timeout_s": 10?}]}
// Template rules (checked when the file is loaded):
//   - "{name}" is replaced by the argument `name`, which must be a declared property; "{{" and "}}" are
//     literal braces. argv[0] (the program) must be literal.
//   - Each template element becomes exactly one argv element (an array argument used as a whole element
//     "{files}" becomes one element per item), so shell syntax (; | $() ` newlines) in a value is inert text.
//   - An element that uses a missing optional argument is dropped (handy for "--level={level}").
//   - Option injection: a value that starts with '-' may not begin an element unless an earlier element is
//     "--" (end of options). Numbers declared as such in the schema are exempt. NUL bytes are refused.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/registry.h"

namespace qnext::tools {

// A template element split into literal text and placeholders.
struct TemplatePart {
    bool is_placeholder = false;
    std::string text;  // literal text, or the argument name
};
using ArgTemplate = std::vector<TemplatePart>;

struct UserTool {
    ToolDecl decl;
    std::vector<ArgTemplate> argv;
    bool has_stdin = false;
    ArgTemplate stdin_template;
    double timeout_s = 0;  // 0 = the call's timeout
};

// An argument value that the template cannot take (message for the model).
class ArgumentError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses one template string; throws std::runtime_error on unbalanced braces or empty placeholders.
ArgTemplate parse_template(const std::string& s);

// Parses and checks a user-tools file's JSON; `where` names the file in error messages.
std::vector<UserTool> parse_user_tools(const nlohmann::ordered_json& j, const std::string& where);

struct ExpandedCall {
    std::vector<std::string> argv;
    std::string stdin_data;
};
// Expands the templates with (schema-checked) arguments. Throws ArgumentError.
ExpandedCall expand_user_tool(const UserTool& tool, const nlohmann::ordered_json& args);

}  // namespace qnext::tools
