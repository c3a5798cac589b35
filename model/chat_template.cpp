// Hand-written renderers mirroring the three official templates (model/templates/*.jinja) line by
// line, with jinja2 semantics for the operations they use: attribute access on dicts (missing ->
// Undefined), truthiness, `is string`, `+` (str only, else TypeError -> TemplateError), `{{ x }}`
// printing (Python str()), Python's str.split/strip, and HF's `tojson`.
#include "model/chat_template.h"

#include <string>

#include "model/chat_template_jinja.h"

namespace qnext {
namespace {

using json = nlohmann::ordered_json;
using namespace tpl;

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

constexpr const char* kToolsHeader =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr const char* kToolsFooter =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";

class Renderer : PromptWriter {
public:
    Renderer(TemplateKind kind, const json& request) : kind_(kind), req_(request) {
        if (!req_.is_object()) fail("the request must be a JSON object");
        const json* m = attr(&req_, "messages");
        if (!m || !m->is_array()) fail("\"messages\" must be an array");
        if (m->empty()) fail("\"messages\" is empty (HF apply_chat_template rejects an empty conversation)");
        msgs_ = m;
    }

    RenderedChat run() {
        system_and_tools();
        if (kind_ != TemplateKind::Instruct) find_last_query();
        for (size_t i = 0; i < n(); ++i) message(i);
        if (truthy(attr(&req_, "add_generation_prompt"))) {
            out_ += "<|im_start|>assistant\n";
            if (kind_ == TemplateKind::Thinking) out_ += "<think>\n";
            if (kind_ == TemplateKind::Hybrid) {
                const json* et = attr(&req_, "enable_thinking");
                if (et && et->is_boolean() && !et->get<bool>()) out_ += "<think>\n\n</think>\n\n";
            }
        }
        return take();
    }

private:
    // The Next templates' `content` variable: the string content, or '' for anything else.
    std::string content_var(size_t i) const {
        const json* c = attr(msg(i), "content");
        return is_string(c) ? c->get<std::string>() : std::string();
    }

    void system_and_tools() {
        const json* first = n() > 0 ? msg(0) : nullptr;
        const bool system_first = equals(attr(first, "role"), "system");
        const json* tools = attr(&req_, "tools");
        if (truthy(tools)) {
            out_ += "<|im_start|>system\n";
            if (system_first) {
                text(str_operand(attr(first, "content"), where(0, "content")));
                out_ += "\n\n";
            }
            out_ += kToolsHeader;
            if (!tools->is_array()) fail("\"tools\" must be an array");
            for (const auto& tool : *tools) {
                out_ += "\n";
                text(py_json_dumps(tool));
            }
            out_ += kToolsFooter;
        } else if (system_first) {
            out_ += "<|im_start|>system\n";
            text(str_operand(attr(first, "content"), where(0, "content")));
            out_ += "<|im_end|>\n";
        }
    }

    // ns.last_query_index: the last user message that is not a wrapped tool response.
    void find_last_query() {
        last_query_ = static_cast<long>(n()) - 1;
        for (size_t k = n(); k-- > 0;) {
            if (!equals(attr(msg(k), "role"), "user")) continue;
            const json* c = attr(msg(k), "content");
            if (kind_ == TemplateKind::Thinking && !is_string(c)) continue;
            const std::string& s = str_operand(c, where(k, "content"));   // hybrid calls .startswith on it
            if (!(starts_with(s, "<tool_response>") && ends_with(s, "</tool_response>"))) {
                last_query_ = static_cast<long>(k);
                return;
            }
        }
    }

    void message(size_t i) {
        const json* m = msg(i);
        const json* role = attr(m, "role");
        const bool hybrid = kind_ == TemplateKind::Hybrid;
        if (equals(role, "user") || (equals(role, "system") && i > 0)) {
            const std::string content = hybrid ? str_operand(attr(m, "content"), where(i, "content")) : content_var(i);
            out_ += "<|im_start|>" + role->get<std::string>() + "\n";   // "user" or "system"
            text(content);
            out_ += "<|im_end|>\n";
        } else if (equals(role, "assistant")) {
            assistant(i);
        } else if (equals(role, "tool")) {
            if (i == 0 || !equals(attr(msg(i - 1), "role"), "tool")) out_ += "<|im_start|>user";
            out_ += "\n<tool_response>\n";
            text(hybrid ? print(attr(m, "content"), where(i, "content")) : content_var(i));
            out_ += "\n</tool_response>";
            if (i + 1 == n() || !equals(attr(msg(i + 1), "role"), "tool")) out_ += "<|im_end|>\n";
        }
    }

    void assistant(size_t i) {
        const json* m = msg(i);
        std::string content;
        if (kind_ == TemplateKind::Instruct) {
            content = content_var(i);
            out_ += "<|im_start|>assistant\n";
            text(content);
        } else {
            const json* raw_content = attr(m, "content");
            // HF apply_chat_template aliases reasoning: the first non-null of reasoning_content,
            // thinking, reasoning becomes reasoning_content (transformers _alias_reasoning_fields).
            const json* rc = attr(m, "reasoning_content");
            for (const char* key : {"reasoning_content", "thinking", "reasoning"})
                if (const json* v = attr(m, key); v && !v->is_null()) {
                    rc = v;
                    break;
                }
            const json* reasoning = nullptr;   // jinja value of reasoning_content
            std::string reasoning_text;        // its string form when a string
            const bool hybrid = kind_ == TemplateKind::Hybrid;
            if (hybrid) content = str_operand(raw_content, where(i, "content"));
            else content = content_var(i);
            const bool given = hybrid ? (rc && !rc->is_null()) : is_string(rc);
            if (given) {
                reasoning = rc;
                if (rc->is_string()) reasoning_text = rc->get<std::string>();
            } else if (content.find("</think>") != std::string::npos) {
                reasoning_text = lstrip_nl(after_last(rstrip_nl(before_first(content, "</think>")), "<think>"));
                content = lstrip_nl(after_last(content, "</think>"));
            }
            const json reasoning_str = reasoning_text;
            if (!reasoning) reasoning = &reasoning_str;
            const bool last = i + 1 == n();
            if (static_cast<long>(i) > last_query_ && (last || truthy(reasoning))) {
                if (!reasoning->is_string())
                    fail(where(i, "reasoning_content") + " must be a string (the template calls .strip on it)");
                out_ += "<|im_start|>assistant\n<think>\n";
                text(strip_nl(reasoning_text));
                out_ += "\n</think>\n\n";
                text(lstrip_nl(content));
            } else {
                out_ += "<|im_start|>assistant\n";
                text(content);
            }
        }
        tool_calls(i, content);
        out_ += "<|im_end|>\n";
    }

    void tool_calls(size_t i, const std::string& content) {
        const json* calls = attr(msg(i), "tool_calls");
        if (!truthy(calls)) return;
        if (!calls->is_array()) fail(where(i, "tool_calls") + " must be an array");
        for (size_t k = 0; k < calls->size(); ++k) {
            if ((k == 0 && !content.empty()) || k > 0) out_ += "\n";
            const json* call = &(*calls)[k];
            const std::string at = where(i, "tool_calls") + "[" + std::to_string(k) + "]";
            if (const json* fn = attr(call, "function"); truthy(fn)) call = fn;
            out_ += "<tool_call>\n{\"name\": \"";
            text(print(attr(call, "name"), at + ".name"));
            out_ += "\", \"arguments\": ";
            const json* args = attr(call, "arguments");
            if (!args) fail(at + " has no \"arguments\" (tojson of an undefined value fails in jinja2)");
            text(args->is_string() ? args->get<std::string>() : py_json_dumps(*args));
            out_ += "}\n</tool_call>";
        }
    }

    TemplateKind kind_;
    const json& req_;
    long last_query_ = -1;
};

}  // namespace

RenderedChat render_chat_spans(TemplateKind kind, const nlohmann::ordered_json& request) {
    if (kind == TemplateKind::Qwen35) return tpl::render_qwen35(request);
    return Renderer(kind, request).run();
}

std::string render_chat(TemplateKind kind, const nlohmann::ordered_json& request) {
    return render_chat_spans(kind, request).text;
}

}  // namespace qnext
