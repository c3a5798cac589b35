// JSON Schema -> grammar rules: dispatch, $ref, combinators, objects, arrays (scalars live in
// json_schema_scalars.cpp). See json_schema.h for the supported subset and the output layout.
#include "agent/constrain/json_schema.h"

#include <algorithm>
#include <set>

#include "agent/constrain/grammar.h"
#include "agent/constrain/json_schema_internal.h"

namespace qnext::constrain {

namespace {

using json = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {"title",    "description", "default",   "examples", "$schema",
                                            "$id",      "$comment",    "deprecated", "readOnly", "writeOnly",
                                            "$defs",    "definitions", "discriminator", "$anchor"};
const std::set<std::string> kHandled = {
    "type",      "nullable",    "properties", "required",         "additionalProperties", "enum",
    "const",     "anyOf",       "oneOf",      "allOf",            "items",                "prefixItems",
    "minItems",  "maxItems",    "minLength",  "maxLength",        "pattern",              "format",
    "minimum",   "maximum",     "exclusiveMinimum", "exclusiveMaximum", "$ref",            "uniqueItems",
    "minProperties", "maxProperties"};
const std::set<std::string> kObjectKw = {"properties", "required", "additionalProperties", "minProperties",
                                         "maxProperties"};
const std::set<std::string> kArrayKw = {"items", "prefixItems", "minItems", "maxItems"};
const std::set<std::string> kStringKw = {"minLength", "maxLength", "pattern", "format"};
const std::set<std::string> kNumberKw = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
const std::vector<std::string> kAllTypes = {"object", "array", "string", "number", "boolean", "null"};

bool is_annotation(const std::string& k) { return kAnnotations.count(k) || k.rfind("x-", 0) == 0; }

void check_keywords(const json& s, const std::string& path) {
    for (const auto& [k, v] : s.items()) {
        if (is_annotation(k)) continue;
        if (k == "uniqueItems") {
            if (v.is_boolean() && !v.get<bool>()) continue;
            throw SchemaError(path + "/uniqueItems", "uniqueItems", "uniqueItems: true cannot be enforced");
        }
        if (!kHandled.count(k)) throw SchemaError(path + "/" + k, k, "keyword not supported by the constrained decoder");
    }
}

// Schema without annotations (memo key; $ref-free schemas with equal keys share one rule).
json strip(const json& s) {
    if (s.is_object()) {
        json out = json::object();
        for (const auto& [k, v] : s.items())
            if (!is_annotation(k)) out[k] = (k == "enum" || k == "const") ? v : strip(v);
        return out;
    }
    if (s.is_array()) {
        json out = json::array();
        for (const auto& v : s) out.push_back(strip(v));
        return out;
    }
    return s;
}

std::vector<std::string> types_of(const json& s, const std::string& path) {
    std::vector<std::string> types;
    if (s.contains("type")) {
        const json& t = s["type"];
        if (t.is_string()) {
            types.push_back(t.get<std::string>());
        } else if (t.is_array()) {
            for (const auto& x : t) {
                if (!x.is_string()) throw SchemaError(path + "/type", "type", "type entries must be strings");
                types.push_back(x.get<std::string>());
            }
        } else {
            throw SchemaError(path + "/type", "type", "type must be a string or an array of strings");
        }
        for (const auto& ty : types)
            if (ty != "integer" && std::find(kAllTypes.begin(), kAllTypes.end(), ty) == kAllTypes.end())
                throw SchemaError(path + "/type", "type", "unknown type '" + ty + "'");
    } else {
        // No type: generate only the types the keywords talk about (a valid, stricter choice).
        auto has_any = [&](const std::set<std::string>& kws) {
            for (const auto& k : kws)
                if (s.contains(k)) return true;
            return false;
        };
        if (has_any(kObjectKw)) types.push_back("object");
        if (has_any(kArrayKw)) types.push_back("array");
        if (has_any(kStringKw)) types.push_back("string");
        if (has_any(kNumberKw)) types.push_back("number");
    }
    if (s.contains("nullable") && s["nullable"].is_boolean() && s["nullable"].get<bool>() &&
        std::find(types.begin(), types.end(), "null") == types.end() && !types.empty())
        types.push_back("null");
    return types;
}

// JSON type name of a value (integers are "integer", also matching "number").
bool value_has_type(const json& v, const std::string& t) {
    if (t == "null") return v.is_null();
    if (t == "boolean") return v.is_boolean();
    if (t == "string") return v.is_string();
    if (t == "array") return v.is_array();
    if (t == "object") return v.is_object();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    return false;
}

// Bitmask of JSON types a (merged, resolved) schema can produce, for oneOf disjointness.
unsigned type_mask(const json& s, const std::vector<std::string>& types) {
    auto bit = [](const std::string& t) -> unsigned {
        if (t == "object") return 1;
        if (t == "array") return 2;
        if (t == "string") return 4;
        if (t == "number" || t == "integer") return 8;
        if (t == "boolean") return 16;
        if (t == "null") return 32;
        return 0;
    };
    if (s.contains("const") || s.contains("enum")) {
        unsigned m = 0;
        json vals = s.contains("const") ? json::array({s["const"]}) : s["enum"];
        for (const auto& v : vals)
            for (const auto& t : kAllTypes)
                if (value_has_type(v, t)) m |= bit(t);
        return m;
    }
    if (types.empty()) return 63;
    unsigned m = 0;
    for (const auto& t : types) m |= bit(t);
    return m;
}

// A value generated from `a` can never validate against `b` (both objects).
bool objects_exclude(const json& a, const json& b) {
    json ap = a.value("properties", json::object()), bp = b.value("properties", json::object());
    bool a_extra = a.contains("additionalProperties") && !(a["additionalProperties"].is_boolean() &&
                                                           !a["additionalProperties"].get<bool>());
    for (const auto& r : b.value("required", json::array())) {
        const std::string k = r.get<std::string>();
        if (!ap.contains(k) && !a_extra) return true;   // b requires a key a never writes
    }
    // a required discriminator whose const/enum values differ
    for (const auto& r : a.value("required", json::array())) {
        const std::string k = r.get<std::string>();
        if (!bp.contains(k) || !ap.contains(k)) continue;
        auto vals = [](const json& p) -> std::optional<json> {
            if (p.is_object() && p.contains("const")) return json::array({p["const"]});
            if (p.is_object() && p.contains("enum")) return p["enum"];
            return std::nullopt;
        };
        auto va = vals(ap[k]), vb = vals(bp[k]);
        if (!va || !vb) continue;
        bool overlap = false;
        for (const auto& x : *va)
            for (const auto& y : *vb) overlap = overlap || x == y;
        if (!overlap) return true;
    }
    return false;
}

}  // namespace

int32_t JsonSchemaCompiler::compile(const json& schema, const json& root_doc, const std::string& path) {
    root_ = &root_doc;
    const int32_t rule = node(schema, path);
    if (rules_.total_states() > detail::kMaxGrammarStates)
        throw SchemaError(path, "size", "the schema needs a grammar of " + std::to_string(rules_.total_states()) +
                                            " states, more than the limit of " + std::to_string(detail::kMaxGrammarStates));
    return rule;
}

int32_t JsonSchemaCompiler::string_rule() {
    if (string_rule_ >= 0) return string_rule_;
    string_rule_ = rules_.declare("string");
    Nfa& nfa = rules_.nfa(string_rule_);
    detail::emit_plain_string(nfa, nfa.start, nfa.final_state);
    return string_rule_;
}

// Any JSON value (schema `true` / `{}`), in the same compact layout.
int32_t JsonSchemaCompiler::any_rule() {
    if (any_rule_ >= 0) return any_rule_;
    any_rule_ = rules_.declare("any");
    const int32_t str = string_rule();
    int32_t number = rules_.declare("any-number");
    {
        Nfa& n = rules_.nfa(number);
        emit_number(n, n.start, n.final_state, json::object(), "", false);
    }
    Nfa& nfa = rules_.nfa(any_rule_);
    const int32_t s = nfa.start, f = nfa.final_state;
    nfa.call(s, str, f);
    nfa.call(s, number, f);
    for (const char* lit : {"true", "false", "null"}) nfa.epsilon(nfa.literal(s, lit), f);
    // object: {} or {"k": v(, "k": v)*}
    int32_t open = nfa.add_state();
    nfa.range(s, '{', '{', open);
    nfa.range(open, '}', '}', f);
    int32_t key = nfa.call_next(open, str);
    int32_t val = nfa.call_next(nfa.literal(key, ": "), any_rule_);
    nfa.range(val, '}', '}', f);
    nfa.call(nfa.literal(val, ", "), str, key);
    // array: [] or [v(, v)*]
    int32_t aopen = nfa.add_state();
    nfa.range(s, '[', '[', aopen);
    nfa.range(aopen, ']', ']', f);
    int32_t item = nfa.call_next(aopen, any_rule_);
    nfa.range(item, ']', ']', f);
    nfa.call(nfa.literal(item, ", "), any_rule_, item);
    return any_rule_;
}

json JsonSchemaCompiler::resolve(const json& s, const std::string& path) {
    if (!s.is_object() || !s.contains("$ref")) return s;
    if (!s["$ref"].is_string()) throw SchemaError(path + "/$ref", "$ref", "must be a string");
    const std::string r = s["$ref"].get<std::string>();
    if (r.empty() || r[0] != '#') throw SchemaError(path + "/$ref", "$ref", "only local references (#...) are supported");
    try {
        json target = r == "#" ? *root_ : root_->at(json::json_pointer(r.substr(1)));
        json rest = s;
        rest.erase("$ref");
        return resolve(target, path);   // siblings of $ref are merged by the caller when present
    } catch (const json::exception& e) {
        throw SchemaError(path + "/$ref", "$ref", "cannot resolve '" + r + "': " + e.what());
    }
}

int32_t JsonSchemaCompiler::ref(const std::string& r, const std::string& path) {
    const std::string key = std::to_string(reinterpret_cast<uintptr_t>(root_)) + r;
    auto it = refs_.find(key);
    if (it != refs_.end()) return it->second;
    if (r.empty() || r[0] != '#') throw SchemaError(path + "/$ref", "$ref", "only local references (#...) are supported");
    const json* target;
    try {
        target = r == "#" ? root_ : &root_->at(json::json_pointer(r.substr(1)));
    } catch (const json::exception& e) {
        throw SchemaError(path + "/$ref", "$ref", "cannot resolve '" + r + "': " + e.what());
    }
    int32_t rule = rules_.declare("ref " + r);
    refs_.emplace(key, rule);
    int32_t body = node(*target, r.substr(1));
    Nfa& nfa = rules_.nfa(rule);
    nfa.call(nfa.start, body, nfa.final_state);
    return rule;
}

int32_t JsonSchemaCompiler::node(const json& s, const std::string& path) {
    if (s.is_boolean()) {
        if (s.get<bool>()) return any_rule();
        throw SchemaError(path, "false", "schema 'false' accepts nothing");
    }
    if (!s.is_object()) throw SchemaError(path, "type", "a schema must be an object or a boolean");
    check_keywords(s, path);
    const json stripped = strip(s);
    std::string key = stripped.dump();
    if (key.find("\"$ref\"") != std::string::npos) key += "@" + std::to_string(reinterpret_cast<uintptr_t>(root_));
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
    int32_t rule = build(s, path);
    memo_.emplace(std::move(key), rule);
    return rule;
}

int32_t JsonSchemaCompiler::build(const json& s, const std::string& path) {
    // $ref: alone it is a reference (recursion-safe); with constraining siblings, merge them.
    if (s.contains("$ref")) {
        if (!s["$ref"].is_string()) throw SchemaError(path + "/$ref", "$ref", "must be a string");
        bool siblings = false;
        for (const auto& [k, v] : s.items()) siblings = siblings || (k != "$ref" && !is_annotation(k));
        if (!siblings) return ref(s["$ref"].get<std::string>(), path);
        json rest = s;
        rest.erase("$ref");
        // resolved first, not inside the braced list: an exception thrown while an initializer_list is being
        // built double-destroys its finished elements with GCC <= 12 (ASan: stack-use-after-scope)
        const json target = resolve(s, path);
        return node(merge_all({target, rest}, path), path);
    }
    if (s.contains("allOf")) {
        if (!s["allOf"].is_array() || s["allOf"].empty())
            throw SchemaError(path + "/allOf", "allOf", "must be a non-empty array");
        std::vector<json> parts;
        json rest = s;
        rest.erase("allOf");
        parts.push_back(rest);
        for (size_t i = 0; i < s["allOf"].size(); ++i) parts.push_back(resolve(s["allOf"][i], path + "/allOf/" + std::to_string(i)));
        return node(merge_all(parts, path), path);
    }
    for (const char* comb : {"anyOf", "oneOf"}) {
        if (!s.contains(comb)) continue;
        const json& branches = s[comb];
        const std::string cpath = path + "/" + comb;
        if (!branches.is_array() || branches.empty()) throw SchemaError(cpath, comb, "must be a non-empty array");
        json rest = s;
        rest.erase(comb);
        bool siblings = false;
        for (const auto& [k, v] : rest.items()) siblings = siblings || !is_annotation(k);
        if (siblings && (rest.contains("anyOf") || rest.contains("oneOf")))
            throw SchemaError(path, comb, "anyOf together with oneOf is not supported");
        std::vector<json> merged;
        for (size_t i = 0; i < branches.size(); ++i) {
            const std::string bpath = cpath + "/" + std::to_string(i);
            if (siblings) {
                const json branch = resolve(branches[i], bpath);   // outside the braced list (see the $ref case)
                merged.push_back(merge_all({rest, branch}, bpath));
            } else {
                merged.push_back(branches[i]);
            }
        }
        if (std::string(comb) == "oneOf" && merged.size() > 1) {
            std::vector<json> res;
            std::vector<unsigned> masks;
            for (size_t i = 0; i < merged.size(); ++i) {
                json r = resolve(merged[i], cpath + "/" + std::to_string(i));
                if (r.is_object() && r.contains("allOf")) r = merge_all({r}, cpath);
                masks.push_back(r.is_object() ? type_mask(r, types_of(r, cpath)) : 63u);
                res.push_back(std::move(r));
            }
            for (size_t i = 0; i < res.size(); ++i)
                for (size_t j = i + 1; j < res.size(); ++j) {
                    if (!(masks[i] & masks[j])) continue;
                    bool ok = false;
                    if (masks[i] == 1 && masks[j] == 1 && res[i].is_object() && res[j].is_object())
                        ok = objects_exclude(res[i], res[j]) && objects_exclude(res[j], res[i]);
                    auto consts = [](const json& x) -> std::optional<json> {
                        if (x.is_object() && x.contains("const")) return json::array({x["const"]});
                        if (x.is_object() && x.contains("enum")) return x["enum"];
                        return std::nullopt;
                    };
                    if (auto a = consts(res[i]), b = consts(res[j]); a && b) {
                        ok = true;
                        for (const auto& x : *a)
                            for (const auto& y : *b) ok = ok && x != y;
                    }
                    if (!ok)
                        throw SchemaError(cpath, "oneOf",
                                          "branches " + std::to_string(i) + " and " + std::to_string(j) +
                                              " are not provably disjoint (use anyOf if overlap is fine)");
                }
        }
        std::vector<int32_t> subs;
        for (size_t i = 0; i < merged.size(); ++i) subs.push_back(node(merged[i], cpath + "/" + std::to_string(i)));
        int32_t rule = rules_.declare(path + "/" + comb);
        Nfa& nfa = rules_.nfa(rule);
        for (int32_t sub : subs) nfa.call(nfa.start, sub, nfa.final_state);
        return rule;
    }
    if (s.contains("enum") || s.contains("const")) {
        json values = s.contains("const") ? json::array({s["const"]}) : s["enum"];
        const char* kw = s.contains("const") ? "const" : "enum";
        if (!values.is_array() || values.empty()) throw SchemaError(path + "/enum", "enum", "must be a non-empty array");
        if (values.size() > detail::kMaxEnumValues)
            throw SchemaError(path + "/enum", "enum", std::to_string(values.size()) + " values, more than the limit of " +
                                                          std::to_string(detail::kMaxEnumValues));
        for (const auto& [k, v] : s.items())
            if (!is_annotation(k) && k != "enum" && k != "const" && k != "type" && k != "nullable")
                throw SchemaError(path + "/" + k, k, std::string("cannot be combined with ") + kw);
        std::vector<std::string> types = s.contains("type") ? types_of(s, path) : std::vector<std::string>{};
        int32_t rule = rules_.declare(path + "/" + kw);
        Nfa& nfa = rules_.nfa(rule);
        size_t kept = 0;
        for (const auto& v : values) {
            bool ok = types.empty();
            for (const auto& t : types) ok = ok || value_has_type(v, t);
            if (!ok) continue;
            ++kept;
            const std::string lit = detail::json_literal(v);
            if (lit.size() > detail::kMaxLiteralBytes)
                throw SchemaError(path + "/" + kw, kw, "a value of " + std::to_string(lit.size()) +
                                                           " bytes, more than the limit of " + std::to_string(detail::kMaxLiteralBytes));
            nfa.epsilon(nfa.literal(nfa.start, lit), nfa.final_state);
        }
        if (!kept) throw SchemaError(path + "/" + kw, kw, "no value matches the declared type");
        return rule;
    }
    std::vector<std::string> types = types_of(s, path);
    if (types.empty()) return any_rule();
    int32_t rule = rules_.declare(path.empty() ? "#" : path);
    for (const auto& t : types) {
        Nfa& nfa = rules_.nfa(rule);
        emit_type(nfa, nfa.start, nfa.final_state, s, t, path);
    }
    return rule;
}

void JsonSchemaCompiler::emit_type(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& t,
                                   const std::string& path) {
    if (t == "string") return emit_string(nfa, from, to, s, path);
    if (t == "integer" || t == "number") return emit_number(nfa, from, to, s, path, t == "integer");
    if (t == "boolean") {
        nfa.epsilon(nfa.literal(from, "true"), to);
        nfa.epsilon(nfa.literal(from, "false"), to);
        return;
    }
    if (t == "null") {
        nfa.epsilon(nfa.literal(from, "null"), to);
        return;
    }
    if (t == "object") return emit_object(nfa, from, to, s, path);
    if (t == "array") return emit_array(nfa, from, to, s, path);
    throw SchemaError(path + "/type", "type", "unknown type '" + t + "'");
}

namespace {

// Additional-property keys: "[A-Za-z0-9_.-]+" (as JSON strings) that differ from every declared name.
void emit_extra_key(Nfa& nfa, int32_t from, int32_t to, const std::vector<std::string>& declared) {
    auto allowed = [](int c) { return isalnum(c) || c == '_' || c == '.' || c == '-'; };
    // trie over declared names restricted to the allowed alphabet
    struct Node {
        int32_t state;
        std::map<char, size_t> kids;
        bool terminal = false;
    };
    std::vector<Node> trie;
    int32_t open = nfa.add_state();
    nfa.range(from, '"', '"', open);
    int32_t close = nfa.add_state();
    nfa.range(close, '"', '"', to);
    int32_t free_state = nfa.add_state();
    trie.push_back({open, {}, false});
    for (const auto& name : declared) {
        bool ok = !name.empty();
        for (char c : name) ok = ok && allowed(static_cast<unsigned char>(c));
        if (!ok) continue;
        size_t cur = 0;
        for (char c : name) {
            auto it = trie[cur].kids.find(c);
            if (it == trie[cur].kids.end()) {
                trie.push_back({nfa.add_state(), {}, false});
                it = trie[cur].kids.emplace(c, trie.size() - 1).first;
            }
            cur = it->second;
        }
        trie[cur].terminal = true;
    }
    for (size_t i = 0; i < trie.size(); ++i) {
        for (int c = 0; c < 128; ++c) {
            if (!allowed(c)) continue;
            auto it = trie[i].kids.find(static_cast<char>(c));
            nfa.range(trie[i].state, c, c, it == trie[i].kids.end() ? free_state : trie[it->second].state);
        }
        if (i > 0 && !trie[i].terminal) nfa.epsilon(trie[i].state, close);
    }
    for (int c = 0; c < 128; ++c)
        if (allowed(c)) nfa.range(free_state, c, c, free_state);
    nfa.epsilon(free_state, close);
}

}  // namespace

void JsonSchemaCompiler::emit_object(Nfa& nfa_in, int32_t from, int32_t to, const json& s, const std::string& path) {
    json props = s.value("properties", json::object());
    if (!props.is_object()) throw SchemaError(path + "/properties", "properties", "must be an object");
    if (props.size() > detail::kMaxProperties)
        throw SchemaError(path + "/properties", "properties", std::to_string(props.size()) +
                                                                  " properties, more than the limit of " + std::to_string(detail::kMaxProperties));
    std::set<std::string> required;
    if (s.contains("required")) {
        if (!s["required"].is_array()) throw SchemaError(path + "/required", "required", "must be an array");
        for (const auto& r : s["required"]) {
            if (!r.is_string()) throw SchemaError(path + "/required", "required", "entries must be strings");
            if (!props.contains(r.get<std::string>()))
                throw SchemaError(path + "/required", "required",
                                  "required property '" + r.get<std::string>() + "' is not declared in properties");
            required.insert(r.get<std::string>());
        }
    }
    // compile sub-schemas first (may add rules)
    std::vector<std::string> names;
    std::vector<int32_t> subs;
    std::vector<char> req;
    for (const auto& [k, v] : props.items()) {
        names.push_back(k);
        subs.push_back(node(v, path + "/properties/" + k));
        req.push_back(required.count(k) ? 1 : 0);
    }
    int32_t extra = -1;
    if (s.contains("additionalProperties")) {
        const json& ap = s["additionalProperties"];
        if (ap.is_boolean())
            extra = ap.get<bool>() ? any_rule() : -1;
        else if (ap.is_object())
            extra = node(ap, path + "/additionalProperties");
        else
            throw SchemaError(path + "/additionalProperties", "additionalProperties", "must be a boolean or a schema");
    }
    Nfa& nfa = nfa_in;
    const size_t n = names.size();
    // minProperties / maxProperties: the states are layered by the number of properties written so far,
    // 0..C, where C = maxProperties (no more may follow) or, without one, minProperties (C stands for "C or
    // more"). Without either there is one layer.
    auto count = [&](const char* kw) -> int64_t {
        if (!s.contains(kw)) return -1;
        if (!s[kw].is_number_integer() || s[kw].get<int64_t>() < 0)
            throw SchemaError(path + "/" + kw, kw, "must be a non-negative integer");
        return s[kw].get<int64_t>();
    };
    const int64_t min_p = std::max<int64_t>(count("minProperties"), 0), max_p = count("maxProperties");
    const int64_t n_required = static_cast<int64_t>(required.size());
    if (max_p >= 0 && max_p < std::max(min_p, n_required))
        throw SchemaError(path + "/maxProperties", "maxProperties",
                          max_p < min_p ? "maxProperties < minProperties" : "maxProperties is below the number of required properties");
    if (extra < 0 && min_p > static_cast<int64_t>(n))
        throw SchemaError(path + "/minProperties", "minProperties",
                          "minProperties exceeds the declared properties and additionalProperties allows no others");
    const int64_t layers = (max_p >= 0 ? max_p : min_p) + 1;
    if (layers > 1000 || layers * static_cast<int64_t>(n + 2) > 20000)
        throw SchemaError(path + (max_p >= 0 ? "/maxProperties" : "/minProperties"), max_p >= 0 ? "maxProperties" : "minProperties",
                          "property-count bounds this large are not supported");
    const auto L = static_cast<size_t>(layers);
    // the layer after writing one more property from layer c (-1: none may be written)
    auto next = [&](size_t c) -> int64_t {
        if (max_p >= 0) return static_cast<int64_t>(c) + 1 <= max_p ? static_cast<int64_t>(c) + 1 : -1;
        return static_cast<int64_t>(std::min(c + 1, L - 1));
    };
    auto may_close = [&](size_t c) { return static_cast<int64_t>(c) >= min_p; };
    // states: open = after '{' (nothing written); entry[i][c] = before property i with c written;
    // after[i][c] = after the value of property i, c written in all
    int32_t open = nfa.add_state();
    nfa.range(from, '{', '{', open);
    std::vector<std::vector<int32_t>> entry(n, std::vector<int32_t>(L, -1)), after(n, std::vector<int32_t>(L, -1));
    for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < L; ++c) after[i][c] = nfa.add_state();
    for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < L; ++c) {
            const int64_t c2 = next(c);
            if (c2 < 0) continue;
            entry[i][c] = nfa.add_state();
            int32_t k = nfa.literal(entry[i][c], detail::json_literal(json(names[i])) + ": ");
            nfa.call(k, subs[i], after[i][static_cast<size_t>(c2)]);
        }
    // required properties in [a, b)
    auto none_required = [&](size_t a, size_t b) {
        for (size_t i = a; i < b; ++i)
            if (req[i]) return false;
        return true;
    };
    for (size_t i = 0; i < n; ++i)
        if (none_required(0, i) && entry[i][0] >= 0) nfa.epsilon(open, entry[i][0]);
    if (none_required(0, n) && may_close(0)) nfa.range(open, '}', '}', to);
    for (size_t j = 0; j < n; ++j)
        for (size_t c = 0; c < L; ++c) {
            int32_t comma = -1;
            for (size_t i = j + 1; i < n; ++i)
                if (none_required(j + 1, i) && entry[i][c] >= 0) {
                    if (comma < 0) comma = nfa.literal(after[j][c], ", ");
                    nfa.epsilon(comma, entry[i][c]);
                }
            if (none_required(j + 1, n) && may_close(c)) nfa.range(after[j][c], '}', '}', to);
        }
    if (extra >= 0) {
        // extra keys come after the declared ones: x_entry[c] -> key ": " value -> x_after[next(c)]
        std::vector<int32_t> x_entry(L, -1), x_after(L);
        for (size_t c = 0; c < L; ++c) x_after[c] = nfa.add_state();
        for (size_t c = 0; c < L; ++c) {
            const int64_t c2 = next(c);
            if (c2 < 0) continue;
            x_entry[c] = nfa.add_state();
            int32_t key_end = nfa.add_state();
            emit_extra_key(nfa, x_entry[c], key_end, names);
            nfa.call(nfa.literal(key_end, ": "), extra, x_after[static_cast<size_t>(c2)]);
        }
        for (size_t c = 0; c < L; ++c) {
            if (may_close(c)) nfa.range(x_after[c], '}', '}', to);
            if (x_entry[c] >= 0) nfa.epsilon(nfa.literal(x_after[c], ", "), x_entry[c]);
        }
        if (none_required(0, n) && x_entry[0] >= 0) nfa.epsilon(open, x_entry[0]);
        for (size_t j = 0; j < n; ++j)
            if (none_required(j + 1, n))
                for (size_t c = 0; c < L; ++c)
                    if (x_entry[c] >= 0) nfa.epsilon(nfa.literal(after[j][c], ", "), x_entry[c]);
    }
}

void JsonSchemaCompiler::emit_array(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path) {
    auto count = [&](const char* kw, int64_t dflt) -> int64_t {
        if (!s.contains(kw)) return dflt;
        if (!s[kw].is_number_integer() || s[kw].get<int64_t>() < 0)
            throw SchemaError(path + "/" + kw, kw, "must be a non-negative integer");
        return s[kw].get<int64_t>();
    };
    std::vector<int32_t> prefix;
    if (s.contains("prefixItems")) {
        if (!s["prefixItems"].is_array()) throw SchemaError(path + "/prefixItems", "prefixItems", "must be an array");
        for (size_t i = 0; i < s["prefixItems"].size(); ++i)
            prefix.push_back(node(s["prefixItems"][i], path + "/prefixItems/" + std::to_string(i)));
    }
    int32_t item = -1;   // -1: no further items allowed
    if (!s.contains("items")) {
        item = any_rule();
    } else if (s["items"].is_boolean()) {
        item = s["items"].get<bool>() ? any_rule() : -1;
    } else if (s["items"].is_object()) {
        item = node(s["items"], path + "/items");
    } else {
        throw SchemaError(path + "/items", "items", "must be a schema (tuple form: use prefixItems)");
    }
    const int64_t mn = count("minItems", 0);
    int64_t mx = count("maxItems", -1);
    if (item < 0) mx = mx < 0 ? static_cast<int64_t>(prefix.size()) : std::min<int64_t>(mx, static_cast<int64_t>(prefix.size()));
    if (mx >= 0 && mx < mn) throw SchemaError(path, "minItems", "minItems exceeds what maxItems/prefixItems allow");
    if (mn > 1000 || mx > 1000) throw SchemaError(path, mx > 1000 ? "maxItems" : "minItems",
                                                  "item-count bounds above 1000 are not supported");
    int32_t cur = nfa.add_state();
    nfa.range(from, '[', '[', cur);
    const int64_t explicit_n = std::max<int64_t>(static_cast<int64_t>(prefix.size()), mn);
    const int64_t last = mx < 0 ? explicit_n : mx;   // states 0..last are expanded
    for (int64_t i = 0;; ++i) {
        if (i >= mn) nfa.range(cur, ']', ']', to);
        if (i == last) break;
        int32_t sub = i < static_cast<int64_t>(prefix.size()) ? prefix[static_cast<size_t>(i)] : item;
        int32_t at = i == 0 ? cur : nfa.literal(cur, ", ");
        cur = nfa.call_next(at, sub);
    }
    if (mx < 0 && item >= 0) {   // unbounded tail
        if (last == 0) {         // no element written yet: the first one has no separator
            cur = nfa.call_next(cur, item);
            nfa.range(cur, ']', ']', to);
        }
        nfa.call(nfa.literal(cur, ", "), item, cur);
    }
}

json JsonSchemaCompiler::merge_all(const std::vector<json>& parts_in, const std::string& path) {
    json out = json::object();
    std::vector<json> parts;
    for (const auto& p : parts_in) {
        json r = resolve(p, path);
        if (r.is_boolean()) {
            if (!r.get<bool>()) throw SchemaError(path, "allOf", "contains the schema 'false'");
            continue;
        }
        if (!r.is_object()) throw SchemaError(path, "allOf", "entries must be schemas");
        check_keywords(r, path);
        if (r.contains("allOf")) {
            std::vector<json> nested{r};
            nested[0].erase("allOf");
            for (const auto& x : r["allOf"]) nested.push_back(x);
            r = merge_all(nested, path);
        }
        parts.push_back(std::move(r));
    }
    for (const auto& p : parts) {
        for (const auto& [k, v] : p.items()) {
            if (is_annotation(k)) continue;
            if (!out.contains(k)) {
                out[k] = v;
                continue;
            }
            json& o = out[k];
            if (k == "properties") {
                for (const auto& [pk, pv] : v.items())
                    o[pk] = o.contains(pk) ? json{{"allOf", json::array({o[pk], pv})}} : pv;
            } else if (k == "required") {
                for (const auto& r : v)
                    if (std::find(o.begin(), o.end(), r) == o.end()) o.push_back(r);
            } else if (k == "type") {
                json a = o.is_array() ? o : json::array({o}), b = v.is_array() ? v : json::array({v});
                json both = json::array();
                for (const auto& x : a)
                    for (const auto& y : b) {
                        if (x == y) both.push_back(x);
                        else if ((x == "number" && y == "integer") || (x == "integer" && y == "number")) both.push_back("integer");
                    }
                if (both.empty()) throw SchemaError(path, "allOf", "incompatible types");
                o = both;
            } else if (k == "minimum" || k == "minLength" || k == "minItems" || k == "exclusiveMinimum" || k == "minProperties") {
                if (v > o) o = v;
            } else if (k == "maximum" || k == "maxLength" || k == "maxItems" || k == "exclusiveMaximum" || k == "maxProperties") {
                if (v < o) o = v;
            } else if (k == "enum") {
                json both = json::array();
                for (const auto& x : o)
                    if (std::find(v.begin(), v.end(), x) != v.end()) both.push_back(x);
                if (both.empty()) throw SchemaError(path, "allOf", "enums do not intersect");
                o = both;
            } else if (k == "items" || k == "additionalProperties") {
                if (o.is_boolean() && !o.get<bool>()) continue;
                if (v.is_boolean()) {
                    if (!v.get<bool>()) o = false;
                    continue;
                }
                o = (o.is_boolean()) ? v : json{{"allOf", json::array({o, v})}};
            } else if (o != v) {
                throw SchemaError(path + "/" + k, k, "conflicting values in allOf cannot be merged");
            }
        }
    }
    // additionalProperties: false in one part forbids the other parts' extra keys
    for (const auto& p : parts) {
        if (!(p.contains("additionalProperties") && p["additionalProperties"].is_boolean() &&
              !p["additionalProperties"].get<bool>()) || !out.contains("properties"))
            continue;
        json own = p.value("properties", json::object());
        json kept = json::object();
        for (const auto& [pk, pv] : out["properties"].items())
            if (own.contains(pk)) kept[pk] = pv;
        for (const auto& r : out.value("required", json::array()))
            if (!kept.contains(r.get<std::string>()))
                throw SchemaError(path, "allOf", "required property '" + r.get<std::string>() +
                                                     "' is forbidden by additionalProperties: false of another part");
        out["properties"] = kept;
    }
    return out;
}

}  // namespace qnext::constrain
