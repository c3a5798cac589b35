// Internal: the jinja2 semantics the native chat-template renderers share (model/chat_template*.cpp):
// attribute access on dicts (missing -> Undefined = nullptr), truthiness, `is string`, `+` on strings
// (TypeError -> TemplateError), `{{ x }}` printing (Python str()).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "model/chat_template.h"

namespace qnext::tpl {

using json = nlohmann::ordered_json;

[[noreturn]] inline void fail(const std::string& what) { throw TemplateError("chat template: " + what); }

// jinja2 `obj.key` on a dict: the value, or nullptr for Undefined.
inline const json* attr(const json* obj, const char* key) {
    if (!obj || !obj->is_object()) return nullptr;
    const auto it = obj->find(key);
    return it == obj->end() ? nullptr : &*it;
}

inline bool truthy(const json* v) {
    if (!v || v->is_null()) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number_integer() || v->is_number_unsigned()) return v->get<int64_t>() != 0;
    if (v->is_number_float()) return v->get<double>() != 0.0;
    if (v->is_string()) return !v->get_ref<const std::string&>().empty();
    return !v->empty();   // array / object
}

inline bool is_string(const json* v) { return v && v->is_string(); }
inline bool equals(const json* v, const char* s) { return is_string(v) && v->get_ref<const std::string&>() == s; }

// Operand of jinja2 `+` with strings: must be a str.
inline const std::string& str_operand(const json* v, const std::string& where) {
    if (!is_string(v))
        fail(where + " must be a string (jinja2 cannot concatenate " +
             (v ? std::string(v->type_name()) : std::string("an undefined value")) + ")");
    return v->get_ref<const std::string&>();
}

// `{{ v }}`: Python str() of the value; Undefined prints nothing.
inline std::string print(const json* v, const std::string& where) {
    if (!v) return "";
    switch (v->type()) {
        case json::value_t::string: return v->get<std::string>();
        case json::value_t::null: return "None";
        case json::value_t::boolean: return v->get<bool>() ? "True" : "False";
        case json::value_t::number_integer: return std::to_string(v->get<int64_t>());
        case json::value_t::number_unsigned: return std::to_string(v->get<uint64_t>());
        case json::value_t::number_float: return py_float_repr(v->get<double>());
        default: fail(where + " is a " + std::string(v->type_name()) + "; printing its Python repr is not supported");
    }
}

inline std::string lstrip_nl(const std::string& s) {
    const auto b = s.find_first_not_of('\n');
    return b == std::string::npos ? std::string() : s.substr(b);
}
inline std::string rstrip_nl(const std::string& s) {
    const auto e = s.find_last_not_of('\n');
    return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}
inline std::string strip_nl(const std::string& s) { return lstrip_nl(rstrip_nl(s)); }
// Python s.split(sep)[0] and s.split(sep)[-1].
inline std::string before_first(const std::string& s, const std::string& sep) {
    const auto p = s.find(sep);
    return p == std::string::npos ? s : s.substr(0, p);
}
inline std::string after_last(const std::string& s, const std::string& sep) {
    const auto p = s.rfind(sep);
    return p == std::string::npos ? s : s.substr(p + sep.size());
}
// What both renderers share: the prompt being written, where the request's own strings landed in it (see
// RenderedChat), and the messages array.
class PromptWriter {
protected:
    // Appends text that comes from the request (message contents, reasoning, tool schemas, call names and
    // arguments) rather than from the template, and records where it is. Markup goes straight to out_.
    void text(const std::string& s) {
        if (s.empty()) return;
        if (!spans_.empty() && spans_.back().end == out_.size()) spans_.back().end += s.size();
        else spans_.push_back({out_.size(), out_.size() + s.size()});
        out_ += s;
    }
    RenderedChat take() { return {std::move(out_), std::move(spans_)}; }
    size_t n() const { return msgs_->size(); }
    const json* msg(size_t i) const { return &(*msgs_)[i]; }
    static std::string where(size_t i, const char* field) { return "messages[" + std::to_string(i) + "]." + field; }

    std::string out_;
    std::vector<TextSpan> spans_;
    const json* msgs_ = nullptr;
};

// The Qwen3.5 template (chat_template_qwen35.cpp).
RenderedChat render_qwen35(const json& request);

}  // namespace qnext::tpl
