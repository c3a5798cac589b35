#include "agent/constrain/tool_grammar.h"

#include <set>
#include <stdexcept>

#include "agent/constrain/json_schema_internal.h"

namespace qnext::constrain {

using json = nlohmann::ordered_json;

std::vector<ToolSpec> parse_tools(const json& tools) {
    if (!tools.is_array()) throw std::runtime_error("tools: expected a JSON array of tool declarations");
    constexpr size_t kMaxTools = 1024;
    if (tools.size() > kMaxTools)
        throw std::runtime_error("tools: " + std::to_string(tools.size()) + " declared, more than the limit of " +
                                 std::to_string(kMaxTools));
    std::vector<ToolSpec> out;
    std::set<std::string> seen;
    for (size_t i = 0; i < tools.size(); ++i) {
        const json& t = tools[i];
        const json& f = (t.is_object() && t.contains("function")) ? t["function"] : t;
        if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
            throw std::runtime_error("tools[" + std::to_string(i) + "]: missing function name");
        ToolSpec spec;
        spec.name = f["name"].get<std::string>();
        if (!seen.insert(spec.name).second) throw std::runtime_error("tools: duplicate tool name '" + spec.name + "'");
        spec.parameters = f.contains("parameters") ? f["parameters"]
                                                   : json{{"type", "object"}, {"properties", json::object()}};
        out.push_back(std::move(spec));
    }
    return out;
}

int32_t add_text_rule(RuleSet& rules, const std::string& forbidden) {
    int32_t rule = rules.declare(forbidden.empty() ? "text" : "text-without " + forbidden);
    Nfa& nfa = rules.nfa(rule);
    if (forbidden.empty()) {
        nfa.range(nfa.start, 0, 255, nfa.start);
        nfa.epsilon(nfa.start, nfa.final_state);
        return rule;
    }
    // KMP automaton: state q = length of the longest suffix of the text that is a prefix of
    // `forbidden`; reaching q == m is not allowed.
    const std::string& p = forbidden;
    const size_t m = p.size();
    std::vector<size_t> fail(m + 1, 0);
    for (size_t i = 1, k = 0; i < m; ++i) {
        while (k && p[i] != p[k]) k = fail[k];
        if (p[i] == p[k]) ++k;
        fail[i + 1] = k;
    }
    std::vector<int32_t> st(m);
    st[0] = nfa.start;
    for (size_t q = 1; q < m; ++q) st[q] = nfa.add_state();
    for (size_t q = 0; q < m; ++q) {
        nfa.epsilon(st[q], nfa.final_state);
        int lo = 0;
        size_t prev = SIZE_MAX;
        for (int b = 0; b <= 256; ++b) {
            size_t next = SIZE_MAX;
            if (b < 256) {
                size_t k = q;
                while (k && static_cast<unsigned char>(p[k]) != b) k = fail[k];
                next = static_cast<unsigned char>(p[k]) == b ? k + 1 : 0;
            }
            if (b == 256 || next != prev) {
                if (b > 0 && prev < m) nfa.range(st[q], lo, b - 1, st[prev]);
                lo = b;
                prev = next;
            }
        }
    }
    return rule;
}

namespace {
int32_t require_token(const Vocabulary& vocab, const std::string& text) {
    auto id = vocab.added_id(text);
    if (!id) throw std::runtime_error("constrain: the tokenizer has no added token " + text);
    return *id;
}
}  // namespace

int32_t emit_thinking_prefix(RuleSet& rules, Nfa& nfa, int32_t from, const Vocabulary& vocab) {
    const int end_think = rules.token_symbol(require_token(vocab, "</think>"));
    nfa.range(from, 0, 255, from);
    int32_t after = nfa.add_state();
    nfa.range(from, end_think, end_think, after);
    return nfa.literal(after, "\n\n");
}

bool xml_raw_string(const json& p) {
    if (!p.is_object()) return false;
    if (!p.contains("type")) {   // an untyped enum / const of strings is written raw too (the template prints str())
        if (p.contains("const")) return p["const"].is_string();
        if (!p.contains("enum") || !p["enum"].is_array() || p["enum"].empty()) return false;
        for (const auto& v : p["enum"])
            if (!v.is_string()) return false;
        return true;
    }
    const json& t = p["type"];
    return (t.is_string() && t == "string") || (t.is_array() && t.size() == 1 && t[0] == "string");
}

std::map<std::string, std::set<std::string>> xml_string_parameters(const std::vector<ToolSpec>& tools) {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& t : tools) {
        auto& names = out[t.name];
        if (t.parameters.is_object() && t.parameters.contains("properties") && t.parameters["properties"].is_object())
            for (const auto& [k, v] : t.parameters["properties"].items())
                if (xml_raw_string(v)) names.insert(k);
    }
    return out;
}

namespace {

// The parameters of one tool in the XML format, into `nfa` from `from` to `to` (see tool_grammar.h).
void emit_xml_parameters(RuleSet& rules, JsonSchemaCompiler& schemas, Nfa& nfa_in, int32_t from, int32_t to,
                         const ToolSpec& tool, int32_t raw_text) {
    const json& s = tool.parameters;
    const std::string where = "tools/" + tool.name + "/parameters";
    if (!s.is_object() || (s.contains("type") && s["type"] != "object"))
        throw SchemaError(where, "type", "tool '" + tool.name + "': XML tool calls need an object schema");
    for (const char* k : {"anyOf", "oneOf", "allOf", "$ref", "patternProperties"})
        if (s.contains(k))
            throw SchemaError(where + "/" + k, k, "tool '" + tool.name + "': not supported at the top of an XML tool's parameters");
    const json props = s.value("properties", json::object());
    std::set<std::string> required;
    if (s.contains("required") && s["required"].is_array())
        for (const auto& r : s["required"])
            if (r.is_string()) {
                if (!props.contains(r.get<std::string>()))
                    throw SchemaError(where + "/required", "required",
                                      "required property '" + r.get<std::string>() + "' is not declared in properties");
                required.insert(r.get<std::string>());
            }
    std::vector<std::string> names;
    std::vector<int32_t> values;   // rule per property
    std::vector<std::vector<std::string>> literals;   // string enum/const alternatives (values[i] < 0)
    for (const auto& [k, v] : props.items()) {
        names.push_back(k);
        const std::string at = where + "/properties/" + k;
        std::vector<std::string> lits;
        int32_t rule = -1;
        if (xml_raw_string(v)) {
            for (const char* kw : {"pattern", "format", "minLength", "maxLength"})
                if (v.contains(kw))
                    throw SchemaError(at + "/" + kw, kw, "tool '" + tool.name +
                                                             "': a string parameter of an XML tool call is raw text, which "
                                                             "cannot be held to " + kw + " yet");
            if (v.contains("enum") || v.contains("const")) {
                const json alts = v.contains("const") ? json::array({v["const"]}) : v["enum"];
                for (const auto& a : alts)
                    if (a.is_string()) lits.push_back(a.get<std::string>());
                if (lits.empty()) throw SchemaError(at + "/enum", "enum", "no string value satisfies the enum");
            } else {
                rule = raw_text;
            }
        } else {
            try {
                rule = schemas.compile(v, s, "/properties/" + k);
            } catch (const SchemaError& e) {
                throw SchemaError(where + e.path(), e.keyword(), std::string("tool '") + tool.name + "': " + e.what());
            }
        }
        values.push_back(rule);
        literals.push_back(std::move(lits));
    }
    (void)rules;
    Nfa& nfa = nfa_in;
    const size_t n = names.size();
    std::vector<int32_t> entry(n), after(n);
    for (size_t i = 0; i < n; ++i) {
        entry[i] = nfa.add_state();
        after[i] = nfa.add_state();
        const int32_t open = nfa.literal(entry[i], "<parameter=" + names[i] + ">\n");
        const int32_t value_end = nfa.add_state();
        if (values[i] >= 0) nfa.call(open, values[i], value_end);
        else
            for (const auto& lit : literals[i]) nfa.epsilon(nfa.literal(open, lit), value_end);
        nfa.epsilon(nfa.literal(value_end, "\n</parameter>\n"), after[i]);
    }
    auto none_required = [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i)
            if (required.count(names[i])) return false;
        return true;
    };
    for (size_t i = 0; i < n; ++i)
        if (none_required(0, i)) nfa.epsilon(from, entry[i]);
    if (none_required(0, n)) nfa.epsilon(from, to);
    for (size_t j = 0; j < n; ++j) {
        for (size_t i = j + 1; i < n; ++i)
            if (none_required(j + 1, i)) nfa.epsilon(after[j], entry[i]);
        if (none_required(j + 1, n)) nfa.epsilon(after[j], to);
    }
}

}  // namespace

int32_t add_tool_rules(RuleSet& rules, JsonSchemaCompiler& schemas, const std::vector<ToolSpec>& tools,
                       const ToolCallOptions& opts, const Vocabulary& vocab) {
    const std::string& choice = opts.choice;
    const bool is_mode = choice == "auto" || choice == "required" || choice == "none";
    if (!is_mode) {
        bool found = false;
        for (const auto& t : tools) found = found || t.name == choice;
        if (!found) throw std::runtime_error("tool_choice: no tool named '" + choice + "' is declared");
    }
    if (tools.empty() && (choice == "required")) throw std::runtime_error("tool_choice required: no tools declared");
    const int open_sym = rules.token_symbol(require_token(vocab, "<tool_call>"));
    const int close_sym = rules.token_symbol(require_token(vocab, "</tool_call>"));

    int32_t call_rule = -1;
    if (choice != "none" && !tools.empty() && opts.format == ToolFormat::Xml) {
        const int32_t raw_text = add_text_rule(rules, "\n</parameter>");
        std::vector<std::pair<const ToolSpec*, int32_t>> bodies;   // per tool: a rule for its parameters
        for (const auto& t : tools) {
            if (!is_mode && t.name != choice) continue;
            const int32_t body = rules.declare("xml-params " + t.name);
            Nfa& b = rules.nfa(body);
            emit_xml_parameters(rules, schemas, b, b.start, b.final_state, t, raw_text);
            bodies.emplace_back(&t, body);
        }
        call_rule = rules.declare("tool-call-xml");
        Nfa& nfa = rules.nfa(call_rule);
        int32_t opened = nfa.add_state();
        nfa.range(nfa.start, open_sym, open_sym, opened);
        const int32_t fn = nfa.literal(opened, "\n<function=");
        const int32_t params_end = nfa.add_state();
        for (const auto& [t, body] : bodies) nfa.call(nfa.literal(fn, t->name + ">\n"), body, params_end);
        const int32_t closed = nfa.literal(params_end, "</function>\n");
        nfa.range(closed, close_sym, close_sym, nfa.final_state);
    } else if (choice != "none" && !tools.empty()) {
        std::vector<std::pair<std::string, int32_t>> args;
        for (const auto& t : tools) {
            if (!is_mode && t.name != choice) continue;
            try {
                args.emplace_back(t.name, schemas.compile(t.parameters, t.parameters, ""));
            } catch (const SchemaError& e) {
                throw SchemaError("tools/" + t.name + "/parameters" + e.path(), e.keyword(),
                                  std::string("tool '") + t.name + "': " + e.what());
            }
        }
        call_rule = rules.declare("tool-call");
        Nfa& nfa = rules.nfa(call_rule);
        int32_t opened = nfa.add_state();
        nfa.range(nfa.start, open_sym, open_sym, opened);
        int32_t named = nfa.literal(opened, "\n{\"name\": ");
        int32_t after_args = nfa.add_state();
        for (const auto& [name, rule] : args)
            nfa.call(nfa.literal(named, detail::json_literal(json(name)) + ", \"arguments\": "), rule, after_args);
        int32_t closed = nfa.literal(after_args, "}\n");
        nfa.range(closed, close_sym, close_sym, nfa.final_state);
    }
    const int32_t root = rules.declare("root");
    const int32_t text = (choice == "auto" || choice == "none") ? add_text_rule(rules, "<tool_call>") : -1;
    Nfa& nfa = rules.nfa(root);
    int32_t cur = opts.thinking ? emit_thinking_prefix(rules, nfa, nfa.start, vocab) : nfa.start;
    if (text >= 0) cur = nfa.call_next(cur, text);
    if (call_rule < 0) {
        nfa.epsilon(cur, nfa.final_state);
        return root;
    }
    if (choice == "auto") nfa.epsilon(cur, nfa.final_state);
    int32_t one = nfa.call_next(cur, call_rule);
    nfa.epsilon(one, nfa.final_state);
    if (opts.parallel_tool_calls && is_mode) nfa.call(nfa.literal(one, "\n"), call_rule, one);
    return root;
}

}  // namespace qnext::constrain
