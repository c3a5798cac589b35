// User tools: JSON declarations with shell-free argv templates.
#include "tools/user_tools.h"

#include <cctype>
#include <set>

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    return true;
}

// The string form of a scalar argument.
std::string scalar_text(const ojson& v, const std::string& name) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    if (v.is_number()) return v.dump();
    throw ArgumentError("argument '" + name + "' must be a string, number or boolean here");
}

bool declared_numeric(const UserTool& t, const std::string& name) {
    const ojson& props = t.decl.parameters.contains("properties") ? t.decl.parameters["properties"] : ojson();
    if (!props.is_object() || !props.contains(name) || !props[name].contains("type")) return false;
    const ojson& ty = props[name]["type"];
    return ty == "integer" || ty == "number";
}

void check_value(const std::string& value, const std::string& name) {
    if (value.find('\0') != std::string::npos) throw ArgumentError("argument '" + name + "' contains a NUL byte");
}

}  // namespace

ArgTemplate parse_template(const std::string& s) {
    ArgTemplate parts;
    std::string literal;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if ((c == '{' || c == '}') && i + 1 < s.size() && s[i + 1] == c) {
            literal += c;
            ++i;
            continue;
        }
        if (c == '}') throw std::runtime_error("unbalanced '}' in template \"" + s + "\" (write }} for a brace)");
        if (c != '{') {
            literal += c;
            continue;
        }
        const std::size_t end = s.find('}', i + 1);
        if (end == std::string::npos) throw std::runtime_error("unclosed '{' in template \"" + s + "\"");
        std::string name = s.substr(i + 1, end - i - 1);
        if (!valid_name(name)) throw std::runtime_error("bad placeholder {" + name + "} in template \"" + s + "\"");
        if (!literal.empty()) parts.push_back({false, std::move(literal)});
        literal.clear();
        parts.push_back({true, std::move(name)});
        i = end;
    }
    if (!literal.empty() || parts.empty()) parts.push_back({false, std::move(literal)});
    return parts;
}

std::vector<UserTool> parse_user_tools(const ojson& j, const std::string& where) {
    const ojson* list = &j;
    if (j.is_object()) {
        if (!j.contains("tools")) throw std::runtime_error(where + ": expected {\"tools\": [...]}");
        list = &j["tools"];
    }
    if (!list->is_array()) throw std::runtime_error(where + ": \"tools\" must be an array");
    // An OpenAI tool list ([{"type": "function", "function": {...}}], what `generate --tools` takes) declares tools
    // but not how to run them: one clear error instead of "unknown key".
    for (const auto& e : *list)
        if (e.is_object() && e.contains("function") && !e.contains("argv"))
            throw std::runtime_error(where + ": this is an OpenAI tool list (declarations only); a tools file for "
                                     "chat/run also says how to run each tool (\"argv\"; see "
                                     "configs/tools/user-tools.example.json)");
    static const std::set<std::string> known = {"name", "description", "parameters", "argv", "stdin", "timeout_s"};
    std::vector<UserTool> out;
    for (std::size_t i = 0; i < list->size(); ++i) {
        const ojson& e = (*list)[i];
        const std::string at = where + ": tools[" + std::to_string(i) + "]";
        if (!e.is_object()) throw std::runtime_error(at + " must be an object");
        for (const auto& [k, v] : e.items())
            if (!known.count(k)) throw std::runtime_error(at + ": unknown key \"" + k + "\"");
        UserTool t;
        t.decl.source = ToolSource::User;
        if (!e.contains("name") || !e["name"].is_string() || !valid_name(e["name"].get<std::string>()))
            throw std::runtime_error(at + ": \"name\" must match [A-Za-z0-9_-]{1,64}");
        t.decl.name = e["name"].get<std::string>();
        const std::string tat = at + " (" + t.decl.name + ")";
        if (!e.contains("description") || !e["description"].is_string())
            throw std::runtime_error(tat + ": \"description\" must be a string");
        t.decl.description = e["description"].get<std::string>();
        t.decl.parameters = e.value("parameters", ojson{{"type", "object"}, {"properties", ojson::object()}});
        if (!t.decl.parameters.is_object() || t.decl.parameters.value("type", "") != "object")
            throw std::runtime_error(tat + ": \"parameters\" must be a JSON Schema with \"type\": \"object\"");
        const ojson props = t.decl.parameters.value("properties", ojson::object());
        if (!e.contains("argv") || !e["argv"].is_array() || e["argv"].empty())
            throw std::runtime_error(tat + ": \"argv\" must be a non-empty array of strings");
        for (const auto& a : e["argv"]) {
            if (!a.is_string()) throw std::runtime_error(tat + ": \"argv\" must contain only strings");
            try {
                t.argv.push_back(parse_template(a.get<std::string>()));
            } catch (const std::runtime_error& err) {
                throw std::runtime_error(tat + ": " + err.what());
            }
        }
        if (e.contains("stdin")) {
            if (!e["stdin"].is_string()) throw std::runtime_error(tat + ": \"stdin\" must be a string template");
            t.has_stdin = true;
            try {
                t.stdin_template = parse_template(e["stdin"].get<std::string>());
            } catch (const std::runtime_error& err) {
                throw std::runtime_error(tat + ": " + err.what());
            }
        }
        for (const auto& p : t.argv.front())
            if (p.is_placeholder)
                throw std::runtime_error(tat + ": argv[0] (the program) must not contain a placeholder");
        auto check_names = [&](const ArgTemplate& tpl) {
            for (const auto& p : tpl)
                if (p.is_placeholder && !props.contains(p.text))
                    throw std::runtime_error(tat + ": placeholder {" + p.text + "} is not a declared parameter");
        };
        for (const auto& tpl : t.argv) check_names(tpl);
        check_names(t.stdin_template);
        if (e.contains("timeout_s")) {
            if (!e["timeout_s"].is_number() || e["timeout_s"].get<double>() <= 0)
                throw std::runtime_error(tat + ": \"timeout_s\" must be a positive number");
            t.timeout_s = e["timeout_s"].get<double>();
        }
        out.push_back(std::move(t));
    }
    return out;
}

ExpandedCall expand_user_tool(const UserTool& tool, const ojson& args) {
    if (!args.is_object()) throw ArgumentError("arguments must be a JSON object");
    ExpandedCall call;
    bool after_double_dash = false;
    for (std::size_t i = 0; i < tool.argv.size(); ++i) {
        const ArgTemplate& tpl = tool.argv[i];
        bool missing = false;
        for (const auto& p : tpl) missing = missing || (p.is_placeholder && !args.contains(p.text));
        if (missing) continue;  // an element that uses a missing optional argument is dropped
        const bool whole = tpl.size() == 1 && tpl[0].is_placeholder;
        auto guard_dash = [&](const std::string& value, const std::string& name) {
            check_value(value, name);
            if (i > 0 && !after_double_dash && !value.empty() && value[0] == '-' && !declared_numeric(tool, name))
                throw ArgumentError("argument '" + name + "' must not start with '-' (it would be read as an option)");
        };
        if (whole && args[tpl[0].text].is_array()) {
            for (const auto& item : args[tpl[0].text]) {
                std::string v = scalar_text(item, tpl[0].text);
                guard_dash(v, tpl[0].text);
                call.argv.push_back(std::move(v));
            }
            continue;
        }
        std::string element;
        for (std::size_t k = 0; k < tpl.size(); ++k) {
            const TemplatePart& p = tpl[k];
            if (!p.is_placeholder) {
                element += p.text;
                continue;
            }
            std::string v = scalar_text(args[p.text], p.text);
            check_value(v, p.text);
            if (k == 0) guard_dash(v, p.text);  // the value begins the element
            element += v;
        }
        if (i > 0 && !whole && tpl.size() == 1 && element == "--") after_double_dash = true;
        call.argv.push_back(std::move(element));
    }
    if (tool.has_stdin) {
        for (const auto& p : tool.stdin_template) {
            if (!p.is_placeholder) {
                call.stdin_data += p.text;
            } else if (args.contains(p.text)) {
                const ojson& v = args[p.text];
                call.stdin_data += v.is_string() ? v.get<std::string>() : v.dump();
            }
        }
    }
    return call;
}

}  // namespace qnext::tools
