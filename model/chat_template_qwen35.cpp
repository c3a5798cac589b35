// Native renderer of the official Qwen3.5 / Qwen3.6 chat template (model/templates/qwen35.jinja), line by line
// with jinja2 semantics (model/chat_template_jinja.h). Where the template itself raises, this throws
// TemplateError with the same message; image and video items are refused (the vision tower is not run).
// One deliberate extension: tool-call `arguments` given as a JSON string holding an object (the OpenAI wire
// form) are used as that object; jinja2's `|items` would raise on a string.
#include <string>

#include "model/chat_template_jinja.h"

namespace qnext::tpl {
namespace {

// Python str.isspace() code points (what `|trim`, i.e. str.strip(), removes).
bool py_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Decodes the UTF-8 code point starting at s[i] (the template strings are valid UTF-8); sets its length.
char32_t decode_at(const std::string& s, size_t i, size_t& len) {
    const auto c = static_cast<unsigned char>(s[i]);
    len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (i + len > s.size()) {
        len = 1;
        return c;
    }
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    return cp;
}

// jinja2 `|trim`: Python str.strip().
std::string py_strip(const std::string& s) {
    size_t b = 0, len = 0;
    while (b < s.size() && py_space(decode_at(s, b, len))) b += len;
    size_t e = b;
    for (size_t i = b; i < s.size(); i += len)
        if (!py_space(decode_at(s, i, len))) e = i + len;
    return s.substr(b, e - b);
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

constexpr const char* kToolsIntro = "# Tools\n\nYou have access to the following functions:\n\n<tools>";
constexpr const char* kToolsRules =
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
    "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified "
    "format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in natural "
    "language BEFORE the function call, but NOT after\n- If there is no function call available, answer the question "
    "like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>";

class Qwen35Renderer : PromptWriter {
public:
    explicit Qwen35Renderer(const json& request) : req_(request) {
        if (!req_.is_object()) fail("the request must be a JSON object");
        const json* m = attr(&req_, "messages");
        if (m && !m->is_array()) fail("\"messages\" must be an array");
        if (!truthy(m)) fail("No messages provided.");
        msgs_ = m;
    }

    RenderedChat run() {
        system_and_tools();
        find_last_query();
        for (size_t i = 0; i < n(); ++i) message(i);
        if (truthy(attr(&req_, "add_generation_prompt"))) {
            out_ += "<|im_start|>assistant\n";
            const json* et = attr(&req_, "enable_thinking");
            out_ += et && et->is_boolean() && !et->get<bool>() ? "<think>\n\n</think>\n\n" : "<think>\n";
        }
        return take();
    }

private:

    // The template's render_content macro (then |trim by every caller).
    std::string content(size_t i, bool system = false) const {
        const json* c = attr(msg(i), "content");
        const std::string at = where(i, "content");
        if (!c || c->is_null()) return "";
        if (c->is_string()) return py_strip(c->get<std::string>());
        if (!c->is_array()) fail(at + ": Unexpected content type.");
        std::string out;
        for (size_t k = 0; k < c->size(); ++k) {
            const json& item = (*c)[k];
            const std::string iat = at + "[" + std::to_string(k) + "]";
            // `'x' in item`: a key of a dict item, a substring of a string item
            auto has = [&](const char* key) {
                if (item.is_object()) return item.contains(key);
                if (item.is_string()) return item.get_ref<const std::string&>().find(key) != std::string::npos;
                if (item.is_array())
                    for (const auto& e : item)
                        if (e.is_string() && e.get_ref<const std::string&>() == key) return true;
                return false;
            };
            const json* type = attr(&item, "type");
            if (has("image") || has("image_url") || equals(type, "image") || has("video") || equals(type, "video"))
                fail(iat + ": vision not supported (" + std::string(system ? "and a system message cannot hold images" :
                                                                        "qnext runs the Qwen3.5 text model only") +
                     "; send text content)");
            if (!has("text")) fail(iat + ": Unexpected item type in content.");
            out += print(attr(&item, "text"), iat + ".text");
        }
        return py_strip(out);
    }

    void system_and_tools() {
        const bool system_first = equals(attr(msg(0), "role"), "system");
        const json* tools = attr(&req_, "tools");
        if (truthy(tools) && tools->is_array()) {
            out_ += "<|im_start|>system\n";
            out_ += kToolsIntro;
            for (const auto& tool : *tools) {
                out_ += "\n";
                text(py_json_dumps(tool));
            }
            out_ += "\n</tools>";
            out_ += kToolsRules;
            if (system_first) {
                const std::string c = content(0, true);
                if (!c.empty()) {
                    out_ += "\n\n";
                    text(c);
                }
            }
            out_ += "<|im_end|>\n";
        } else if (system_first) {
            out_ += "<|im_start|>system\n";
            text(content(0, true));
            out_ += "<|im_end|>\n";
        }
    }

    void find_last_query() {
        for (size_t k = n(); k-- > 0;) {
            if (!equals(attr(msg(k), "role"), "user")) continue;
            const std::string c = content(k);
            if (!(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
                last_query_ = static_cast<long>(k);
                return;
            }
        }
        fail("No user query found in messages.");
    }

    void message(size_t i) {
        const json* m = msg(i);
        const json* role = attr(m, "role");
        const std::string c = content(i);
        if (equals(role, "system")) {
            if (i != 0) fail("System message must be at the beginning.");
        } else if (equals(role, "user")) {
            out_ += "<|im_start|>user\n";
            text(c);
            out_ += "<|im_end|>\n";
        } else if (equals(role, "assistant")) {
            assistant(i, c);
        } else if (equals(role, "tool")) {
            if (i > 0 && !equals(attr(msg(i - 1), "role"), "tool")) out_ += "<|im_start|>user";
            out_ += "\n<tool_response>\n";
            text(c);
            out_ += "\n</tool_response>";
            if (i + 1 == n() || !equals(attr(msg(i + 1), "role"), "tool")) out_ += "<|im_end|>\n";
        } else {
            fail(where(i, "role") + ": Unexpected message role.");
        }
    }

    void assistant(size_t i, std::string c) {
        const json* m = msg(i);
        // HF apply_chat_template aliases reasoning: the first non-null of reasoning_content, thinking, reasoning.
        const json* rc = nullptr;
        for (const char* key : {"reasoning_content", "thinking", "reasoning"})
            if (const json* v = attr(m, key); v && !v->is_null()) {
                rc = v;
                break;
            }
        std::string reasoning;
        if (is_string(rc)) {
            reasoning = rc->get<std::string>();
        } else if (c.find("</think>") != std::string::npos) {
            reasoning = lstrip_nl(after_last(rstrip_nl(before_first(c, "</think>")), "<think>"));
            c = lstrip_nl(after_last(c, "</think>"));
        }
        reasoning = py_strip(reasoning);
        out_ += "<|im_start|>assistant\n";
        if (static_cast<long>(i) > last_query_) {
            out_ += "<think>\n";
            text(reasoning);
            out_ += "\n</think>\n\n";
        }
        text(c);
        const json* calls = attr(m, "tool_calls");
        if (truthy(calls) && calls->is_array()) {
            for (size_t k = 0; k < calls->size(); ++k) {
                const std::string at = where(i, "tool_calls") + "[" + std::to_string(k) + "]";
                const json* call = &(*calls)[k];
                if (const json* fn = attr(call, "function")) call = fn;
                const std::string& name = str_operand(attr(call, "name"), at + ".name");
                out_ += k == 0 ? (py_strip(c).empty() ? "<tool_call>\n<function=" : "\n\n<tool_call>\n<function=")
                               : "\n<tool_call>\n<function=";
                text(name);
                out_ += ">\n";
                if (const json* args = attr(call, "arguments")) parameters(*args, at + ".arguments");
                out_ += "</function>\n</tool_call>";
            }
        }
        out_ += "<|im_end|>\n";
    }

    void parameters(const json& args_in, const std::string& at) {
        json parsed;
        const json* args = &args_in;
        if (args->is_string()) {   // the OpenAI wire form: a JSON object in a string
            parsed = json::parse(args->get_ref<const std::string&>(), nullptr, false);
            if (parsed.is_discarded() || !parsed.is_object())
                fail(at + " must be an object (or a string holding a JSON object): Can only get item pairs from a mapping.");
            args = &parsed;
        }
        if (args->is_null()) fail(at + ": Can only get item pairs from a mapping.");
        if (!args->is_object()) fail(at + ": Can only get item pairs from a mapping.");
        for (const auto& [name, value] : args->items()) {
            out_ += "<parameter=";
            text(name);
            out_ += ">\n";
            // mappings and non-string sequences as tojson, everything else as Python str()
            text(value.is_object() || value.is_array() ? py_json_dumps(value) : print(&value, at + "." + name));
            out_ += "\n</parameter>\n";
        }
    }

    const json& req_;
    long last_query_ = -1;
};

}  // namespace

RenderedChat render_qwen35(const json& request) { return Qwen35Renderer(request).run(); }

}  // namespace qnext::tpl
