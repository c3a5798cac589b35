// Chat templates: HF `tojson` (Python json.dumps), template names, detection and folder lookup.
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "model/chat_template.h"
#include "model/gguf.h"
#include "common/json_limits.h"

namespace qnext {
namespace detail {
extern const std::string_view kInstructTemplate;   // generated: chat_template_sources.cpp
extern const std::string_view kThinkingTemplate;
extern const std::string_view kHybridTemplate;
extern const std::string_view kQwen35Template;
}  // namespace detail

namespace {

using json = nlohmann::ordered_json;

// json.dumps string escaping with ensure_ascii=False: only '"', '\\' and C0 controls are escaped.
void dump_string(const std::string& s, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

void dump(const json& v, std::string& out) {
    switch (v.type()) {
        case json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [k, x] : v.items()) {
                if (!first) out += ", ";
                first = false;
                dump_string(k, out);
                out += ": ";
                dump(x, out);
            }
            out += '}';
            break;
        }
        case json::value_t::array: {
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ", ";
                dump(v[i], out);
            }
            out += ']';
            break;
        }
        case json::value_t::string: dump_string(v.get_ref<const std::string&>(), out); break;
        case json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; break;
        case json::value_t::null: out += "null"; break;
        case json::value_t::number_integer: out += std::to_string(v.get<int64_t>()); break;
        case json::value_t::number_unsigned: out += std::to_string(v.get<uint64_t>()); break;
        case json::value_t::number_float: out += py_float_repr(v.get<double>()); break;
        default: throw TemplateError("chat template: cannot serialize a binary JSON value");
    }
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::string py_float_repr(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);   // shortest
    (void)ec;
    std::string sci(buf, end);   // e.g. "-1.2345e+02"
    std::string sign;
    if (sci[0] == '-') {
        sign = "-";
        sci.erase(0, 1);
    }
    const auto epos = sci.find('e');
    const int exp10 = std::stoi(sci.substr(epos + 1));
    std::string digits = sci.substr(0, epos);
    if (digits.size() > 1) digits.erase(1, 1);   // drop the '.'
    const int n = static_cast<int>(digits.size());
    std::string out = sign;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            const int int_len = exp10 + 1;
            if (n <= int_len) {
                out += digits + std::string(static_cast<size_t>(int_len - n), '0') + ".0";
            } else {
                out += digits.substr(0, static_cast<size_t>(int_len)) + "." + digits.substr(static_cast<size_t>(int_len));
            }
        } else {
            out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
        }
    } else {
        out += digits.substr(0, 1);
        if (n > 1) out += "." + digits.substr(1);
        const int a = std::abs(exp10);
        out += exp10 < 0 ? "e-" : "e+";
        if (a < 10) out += '0';
        out += std::to_string(a);
    }
    return out;
}

std::string py_json_dumps(const nlohmann::ordered_json& value) {
    std::string out;
    dump(value, out);
    return out;
}

std::string_view template_name(TemplateKind kind) {
    switch (kind) {
        case TemplateKind::Instruct: return "instruct";
        case TemplateKind::Thinking: return "thinking";
        case TemplateKind::Hybrid: return "hybrid";
        case TemplateKind::Qwen35: return "qwen35";
    }
    return "?";
}

TemplateKind parse_template_name(std::string_view name) {
    if (name == "instruct") return TemplateKind::Instruct;
    if (name == "thinking") return TemplateKind::Thinking;
    if (name == "hybrid") return TemplateKind::Hybrid;
    if (name == "qwen35") return TemplateKind::Qwen35;
    throw TemplateError("unknown template name '" + std::string(name) +
                        "' (expected instruct, thinking, hybrid or qwen35)");
}

std::string_view template_source(TemplateKind kind) {
    switch (kind) {
        case TemplateKind::Instruct: return detail::kInstructTemplate;
        case TemplateKind::Thinking: return detail::kThinkingTemplate;
        case TemplateKind::Hybrid: return detail::kHybridTemplate;
        case TemplateKind::Qwen35: return detail::kQwen35Template;
    }
    return {};
}

std::optional<TemplateKind> detect_template(std::string_view jinja_text) {
    for (const auto k : {TemplateKind::Instruct, TemplateKind::Thinking, TemplateKind::Hybrid, TemplateKind::Qwen35})
        if (jinja_text == template_source(k)) return k;
    return std::nullopt;
}

std::optional<std::string> read_chat_template(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec) && looks_like_gguf(path)) {   // tokenizer.chat_template
        const auto f = GgufFile::open(path);
        const GgufValue* t = f->find("tokenizer.chat_template");
        if (!t) return std::nullopt;
        return t->as_string("tokenizer.chat_template");
    }
    const auto dir = std::filesystem::is_directory(path) ? path : path.parent_path();
    if (const auto jinja = dir / "chat_template.jinja"; std::filesystem::exists(jinja)) return read_file(jinja);
    const auto cfg_path = dir / "tokenizer_config.json";
    if (!std::filesystem::exists(cfg_path)) return std::nullopt;
    nlohmann::json cfg;
    try {
        cfg = parse_json_limited(read_file(cfg_path));
    } catch (const std::exception& e) {
        throw std::runtime_error(cfg_path.string() + ": invalid JSON: " + e.what());
    }
    if (!cfg.contains("chat_template")) return std::nullopt;
    const auto& t = cfg["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array())
        for (const auto& e : t)
            if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
                return e["template"].get<std::string>();
    throw TemplateError(cfg_path.string() + ": \"chat_template\" is neither a string nor a list with a \"default\" entry");
}

TemplateKind resolve_template(const std::filesystem::path& dir, std::optional<TemplateKind> override_kind) {
    if (override_kind) return *override_kind;
    const auto text = read_chat_template(dir);
    std::error_code ec;
    // A GGUF without tokenizer.chat_template: the built-in Qwen3-Next Instruct template (what llama.cpp's
    // converter writes for the Instruct models; Thinking mode switches to the Thinking template).
    if (!text && std::filesystem::is_regular_file(dir, ec) && looks_like_gguf(dir)) return TemplateKind::Instruct;
    if (!text)
        throw TemplateError("no chat template found in " + dir.string() +
                            " (neither chat_template.jinja nor tokenizer_config.json's chat_template); "
                            "choose one with --template instruct|thinking|hybrid|qwen35");
    if (const auto kind = detect_template(*text)) return *kind;
    throw TemplateError("the chat template in " + dir.string() +
                        " is not one of the known Qwen3-Next Instruct/Thinking, Qwen3 hybrid or Qwen3.5 templates "
                        "(whitespace-exact comparison); qnext renders only those. Choose one with "
                        "--template instruct|thinking|hybrid|qwen35 if it is equivalent");
}

}  // namespace qnext
