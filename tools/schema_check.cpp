// JSON-Schema subset checker for tool arguments.
#include "tools/schema_check.h"

#include <cmath>

#include <re2/re2.h>
#include <utf8proc.h>

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

std::string type_name(const ojson& v) {
    switch (v.type()) {
        case ojson::value_t::null: return "null";
        case ojson::value_t::boolean: return "boolean";
        case ojson::value_t::number_integer:
        case ojson::value_t::number_unsigned: return "integer";
        case ojson::value_t::number_float: return "number";
        case ojson::value_t::string: return "string";
        case ojson::value_t::array: return "array";
        case ojson::value_t::object: return "object";
        default: return "value";
    }
}

bool has_type(const ojson& v, const std::string& t) {
    if (t == "integer") {
        if (v.is_number_integer()) return true;
        // An integral float counts only within int64 (what a tool can read it as); 1e23 is not an integer here.
        if (!v.is_number_float()) return false;
        const double d = v.get<double>();
        return std::isfinite(d) && std::floor(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
    }
    if (t == "number") return v.is_number();
    if (t == "string") return v.is_string();
    if (t == "boolean") return v.is_boolean();
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "null") return v.is_null();
    return true;  // unknown type names are not ours to reject
}

std::size_t code_points(const std::string& s) {
    std::size_t n = 0;
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
    while (left > 0) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t k = utf8proc_iterate(p, left, &cp);
        if (k <= 0) k = 1;  // count an invalid byte as one
        p += k;
        left -= k;
        ++n;
    }
    return n;
}

std::string check(const ojson& schema, const ojson& v, const std::string& where);

std::string check_number(const ojson& s, const ojson& v, const std::string& where) {
    const double x = v.get<double>();
    auto num = [&](const char* k, double& out) {
        if (!s.contains(k) || !s[k].is_number()) return false;
        out = s[k].get<double>();
        return true;
    };
    double b = 0;
    if (num("minimum", b) && x < b) return where + ": " + v.dump() + " is less than the minimum " + s["minimum"].dump();
    if (num("maximum", b) && x > b) return where + ": " + v.dump() + " is greater than the maximum " + s["maximum"].dump();
    if (num("exclusiveMinimum", b) && x <= b)
        return where + ": " + v.dump() + " must be greater than " + s["exclusiveMinimum"].dump();
    if (num("exclusiveMaximum", b) && x >= b)
        return where + ": " + v.dump() + " must be less than " + s["exclusiveMaximum"].dump();
    return "";
}

std::string check_string(const ojson& s, const ojson& v, const std::string& where) {
    const std::string& str = v.get_ref<const std::string&>();
    if (s.contains("minLength") && s["minLength"].is_number_unsigned() &&
        code_points(str) < s["minLength"].get<std::size_t>())
        return where + ": shorter than " + s["minLength"].dump() + " characters";
    if (s.contains("maxLength") && s["maxLength"].is_number_unsigned() &&
        code_points(str) > s["maxLength"].get<std::size_t>())
        return where + ": longer than " + s["maxLength"].dump() + " characters";
    if (s.contains("pattern") && s["pattern"].is_string()) {
        RE2 re(s["pattern"].get<std::string>(), RE2::Quiet);
        if (re.ok() && !RE2::PartialMatch(str, re))
            return where + ": does not match the pattern " + s["pattern"].dump();
    }
    return "";
}

std::string check_object(const ojson& s, const ojson& v, const std::string& where) {
    if (s.contains("required") && s["required"].is_array())
        for (const auto& r : s["required"])
            if (r.is_string() && !v.contains(r.get<std::string>()))
                return where + ": missing required property '" + r.get<std::string>() + "'";
    const ojson* props = s.contains("properties") && s["properties"].is_object() ? &s["properties"] : nullptr;
    for (const auto& [key, val] : v.items()) {
        const std::string at = where + "." + key;
        if (props && props->contains(key)) {
            if (std::string e = check((*props)[key], val, at); !e.empty()) return e;
            continue;
        }
        if (s.contains("additionalProperties")) {
            const ojson& ap = s["additionalProperties"];
            if (ap.is_boolean() && !ap.get<bool>()) return where + ": unknown property '" + key + "'";
            if (ap.is_object())
                if (std::string e = check(ap, val, at); !e.empty()) return e;
        }
    }
    return "";
}

std::string check_array(const ojson& s, const ojson& v, const std::string& where) {
    if (s.contains("minItems") && s["minItems"].is_number_unsigned() && v.size() < s["minItems"].get<std::size_t>())
        return where + ": fewer than " + s["minItems"].dump() + " items";
    if (s.contains("maxItems") && s["maxItems"].is_number_unsigned() && v.size() > s["maxItems"].get<std::size_t>())
        return where + ": more than " + s["maxItems"].dump() + " items";
    if (s.contains("items") && s["items"].is_object())
        for (std::size_t i = 0; i < v.size(); ++i)
            if (std::string e = check(s["items"], v[i], where + "[" + std::to_string(i) + "]"); !e.empty()) return e;
    return "";
}

std::string check(const ojson& s, const ojson& v, const std::string& where) {
    if (s.is_boolean()) return s.get<bool>() ? "" : where + ": no value is allowed here";
    if (!s.is_object()) return "";
    if (s.contains("type")) {
        const ojson& t = s["type"];
        bool ok = false;
        std::string expected;
        if (t.is_string()) {
            ok = has_type(v, t.get<std::string>());
            expected = t.get<std::string>();
        } else if (t.is_array()) {
            for (const auto& one : t) {
                if (!one.is_string()) continue;
                ok = ok || has_type(v, one.get<std::string>());
                expected += (expected.empty() ? "" : " or ") + one.get<std::string>();
            }
        } else {
            ok = true;
        }
        if (!ok) return where + ": expected " + expected + ", got " + type_name(v);
    }
    if (s.contains("enum") && s["enum"].is_array()) {
        bool found = false;
        for (const auto& e : s["enum"]) found = found || e == v;
        if (!found) return where + ": " + v.dump() + " is not one of " + s["enum"].dump();
    }
    if (s.contains("const") && s["const"] != v) return where + ": must be " + s["const"].dump();
    if (s.contains("allOf") && s["allOf"].is_array())
        for (const auto& sub : s["allOf"])
            if (std::string e = check(sub, v, where); !e.empty()) return e;
    for (const char* key : {"anyOf", "oneOf"}) {
        if (!s.contains(key) || !s[key].is_array() || s[key].empty()) continue;
        std::size_t matches = 0;
        std::string first_error;
        for (const auto& sub : s[key]) {
            std::string e = check(sub, v, where);
            if (e.empty()) ++matches;
            else if (first_error.empty()) first_error = e;
        }
        if (matches == 0) return first_error;
        if (std::string(key) == "oneOf" && matches > 1) return where + ": matches more than one alternative";
    }
    if (v.is_number()) return check_number(s, v, where);
    if (v.is_string()) return check_string(s, v, where);
    if (v.is_object()) return check_object(s, v, where);
    if (v.is_array()) return check_array(s, v, where);
    return "";
}

}  // namespace

std::string check_against_schema(const ojson& schema, const ojson& value, const std::string& where) {
    return check(schema, value, where);
}

}  // namespace qnext::tools
