#include "tests/constrain/schema_validator.h"

#include <cmath>
#include <ctime>
#include <regex>

namespace qnext::constrain::testing {
namespace {

using json = nlohmann::ordered_json;

std::wstring utf32(const std::string& s) {
    std::wstring out;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (int k = 1; k < len && i + static_cast<size_t>(k) < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3F);
        out.push_back(static_cast<wchar_t>(cp));
        i += static_cast<size_t>(len);
    }
    return out;
}

bool matches(const std::string& pattern, const std::string& s) {
    std::wregex re(utf32(pattern), std::regex::ECMAScript);
    return std::regex_search(utf32(s), re);
}

bool valid_date(const std::string& s) {
    if (!matches("^\\d{4}-\\d{2}-\\d{2}$", s)) return false;
    int y = std::stoi(s.substr(0, 4)), m = std::stoi(s.substr(5, 2)), d = std::stoi(s.substr(8, 2));
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}
bool valid_time(const std::string& s) {
    return matches("^([01]\\d|2[0-3]):[0-5]\\d:([0-5]\\d|60)(\\.\\d+)?([zZ]|[+-]([01]\\d|2[0-3]):[0-5]\\d)$", s);
}
bool valid_format(const std::string& f, const std::string& s) {
    if (f == "date") return valid_date(s);
    if (f == "time") return valid_time(s);
    if (f == "date-time") {
        size_t t = s.find_first_of("Tt");
        return t == 10 && valid_date(s.substr(0, 10)) && valid_time(s.substr(11));
    }
    if (f == "uuid") return matches("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", s);
    if (f == "email") {
        size_t at = s.find('@');
        return at != std::string::npos && at > 0 && s.find('.', at) != std::string::npos && s.back() != '.';
    }
    if (f == "uri") return matches("^[A-Za-z][A-Za-z0-9+.-]*:[^ \"<>\\\\^`{|}]*$", s);
    if (f == "ipv4") {
        std::smatch m;
        std::regex re("^(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})$");
        if (!std::regex_match(s, m, re)) return false;
        for (int i = 1; i <= 4; ++i)
            if (std::stoi(m[i]) > 255 || (m[i].length() > 1 && m[i].str()[0] == '0')) return false;
        return true;
    }
    if (f == "hostname") return matches("^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*$", s);
    return false;
}

bool has_type(const json& v, const std::string& t) {
    if (t == "null") return v.is_null();
    if (t == "boolean") return v.is_boolean();
    if (t == "string") return v.is_string();
    if (t == "array") return v.is_array();
    if (t == "object") return v.is_object();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    return false;
}

size_t codepoints(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

bool json_equal(const json& a, const json& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    if (a.type() != b.type()) return false;
    if (a.is_object()) {
        if (a.size() != b.size()) return false;
        for (const auto& [k, v] : a.items())
            if (!b.contains(k) || !json_equal(v, b[k])) return false;
        return true;
    }
    if (a.is_array()) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (!json_equal(a[i], b[i])) return false;
        return true;
    }
    return a == b;
}

class Validator {
public:
    explicit Validator(const json& root) : root_(root) {}

    std::optional<std::string> check(const json& v, const json& s, const std::string& at) {
        if (s.is_boolean()) return s.get<bool>() ? std::nullopt : fail(at, "false schema");
        if (s.contains("$ref")) {
            std::string r = s["$ref"];
            const json& target = r == "#" ? root_ : root_.at(json::json_pointer(r.substr(1)));
            if (auto e = check(v, target, at)) return e;
        }
        if (s.contains("type")) {
            json types = s["type"].is_array() ? s["type"] : json::array({s["type"]});
            if (s.value("nullable", false)) types.push_back("null");
            bool ok = false;
            for (const auto& t : types) ok = ok || has_type(v, t.get<std::string>());
            if (!ok) return fail(at, "type " + types.dump());
        }
        if (s.contains("const") && !json_equal(v, s["const"])) return fail(at, "const");
        if (s.contains("enum")) {
            bool ok = false;
            for (const auto& e : s["enum"]) ok = ok || json_equal(v, e);
            if (!ok) return fail(at, "enum");
        }
        for (const char* comb : {"allOf", "anyOf", "oneOf"}) {
            if (!s.contains(comb)) continue;
            int n_ok = 0;
            for (const auto& sub : s[comb]) n_ok += check(v, sub, at) ? 0 : 1;
            const std::string c = comb;
            if (c == "allOf" && n_ok != static_cast<int>(s[comb].size())) return fail(at, "allOf");
            if (c == "anyOf" && n_ok == 0) return fail(at, "anyOf");
            if (c == "oneOf" && n_ok != 1) return fail(at, "oneOf matched " + std::to_string(n_ok));
        }
        if (v.is_string()) {
            const std::string str = v.get<std::string>();
            if (s.contains("minLength") && codepoints(str) < s["minLength"].get<size_t>()) return fail(at, "minLength");
            if (s.contains("maxLength") && codepoints(str) > s["maxLength"].get<size_t>()) return fail(at, "maxLength");
            if (s.contains("pattern") && !matches(s["pattern"], str)) return fail(at, "pattern");
            if (s.contains("format") && !valid_format(s["format"], str)) return fail(at, "format " + s["format"].get<std::string>());
        }
        if (v.is_number()) {
            double x = v.get<double>();
            if (s.contains("minimum") && x < s["minimum"].get<double>()) return fail(at, "minimum");
            if (s.contains("maximum") && x > s["maximum"].get<double>()) return fail(at, "maximum");
            if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) return fail(at, "exclusiveMinimum");
            if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) return fail(at, "exclusiveMaximum");
        }
        if (v.is_object()) {
            for (const auto& r : s.value("required", json::array()))
                if (!v.contains(r.get<std::string>())) return fail(at, "required " + r.get<std::string>());
            const json props = s.value("properties", json::object());
            for (const auto& [k, x] : v.items()) {
                if (props.contains(k)) {
                    if (auto e = check(x, props[k], at + "/" + k)) return e;
                } else if (s.contains("additionalProperties")) {
                    if (auto e = check(x, s["additionalProperties"], at + "/" + k)) return e;
                }
            }
        }
        if (v.is_array()) {
            if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return fail(at, "minItems");
            if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return fail(at, "maxItems");
            size_t np = s.contains("prefixItems") ? s["prefixItems"].size() : 0;
            for (size_t i = 0; i < v.size(); ++i) {
                const std::string where = at + "/" + std::to_string(i);
                if (i < np) {
                    if (auto e = check(v[i], s["prefixItems"][i], where)) return e;
                } else if (s.contains("items")) {
                    if (auto e = check(v[i], s["items"], where)) return e;
                }
            }
        }
        return std::nullopt;
    }

private:
    static std::optional<std::string> fail(const std::string& at, const std::string& what) {
        return (at.empty() ? std::string("#") : at) + ": " + what;
    }
    const json& root_;
};

}  // namespace

std::optional<std::string> validate(const json& instance, const json& schema) {
    return Validator(schema).check(instance, schema, "");
}

}  // namespace qnext::constrain::testing
