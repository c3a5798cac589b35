// Native C++ renderers of the three official chat templates, byte-identical to HF
// `apply_chat_template` (jinja2) output:
//   Instruct = Qwen3-Next-80B-A3B-Instruct, Thinking = Qwen3-Next-80B-A3B-Thinking,
//   Hybrid   = original Qwen3 (April 2025) template with the enable_thinking switch.
// The template texts are embedded in the binary (model/templates/*.jinja) and used to detect which
// template a tokenizer_config.json carries (whitespace-exact comparison).
//
// request = {"messages": [...], "tools": [...]?, "add_generation_prompt": bool?, "enable_thinking": bool?}
// Messages are OpenAI style: role system|user|assistant|tool, `content` (string; the Next templates
// treat non-string content as ""), assistant `reasoning_content` and `tool_calls`
// ([{"type":"function","function":{"name","arguments"}}], arguments a JSON string or object).
// As in HF, the first non-null of reasoning_content / thinking / reasoning is the reasoning.
// Where jinja2 itself would fail (e.g. the hybrid template given a null content, which it
// concatenates) render_chat throws TemplateError with the message index; the agent should send ""
// rather than null for content-less assistant turns.
#pragma once
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/text_span.h"

namespace qnext {

// Qwen35: the Qwen3.5 / Qwen3.6 template (XML tool calls <function=NAME><parameter=ARG>, tool results in a
// user turn, <think> opened by the generation prompt unless enable_thinking is false, content lists of text
// items; image/video items are refused: qnext runs the text model only).
enum class TemplateKind { Instruct, Thinking, Hybrid, Qwen35 };

// Whether a template's model writes tool calls in the XML form of Qwen3.5
// (<tool_call>\n<function=NAME>\n<parameter=ARG>\nVALUE\n</parameter>\n</function>\n</tool_call>) rather than
// JSON inside <tool_call> (Qwen3 / Qwen3-Next).
inline bool xml_tool_calls(TemplateKind k) { return k == TemplateKind::Qwen35; }

struct TemplateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string render_chat(TemplateKind kind, const nlohmann::ordered_json& request);

// The same prompt text plus where in it the request's own strings landed: every message content
// (system, user, assistant, tool), reasoning, tool schema (tojson), tool-call name and arguments.
// Everything outside `content` is the template's markup. Spans are sorted, disjoint and non-empty;
// adjacent ones are merged. encode_chat (model/chat_encode.h) uses them so that only the markup can
// produce control tokens.
struct RenderedChat {
    std::string text;
    std::vector<TextSpan> content;
};
RenderedChat render_chat_spans(TemplateKind kind, const nlohmann::ordered_json& request);

// "instruct" | "thinking" | "hybrid" | "qwen35" <-> TemplateKind (parse throws on anything else).
std::string_view template_name(TemplateKind kind);
TemplateKind parse_template_name(std::string_view name);

// The embedded official template text for `kind`.
std::string_view template_source(TemplateKind kind);

// Which known template `jinja_text` is (exact comparison), or nullopt.
std::optional<TemplateKind> detect_template(std::string_view jinja_text);

// The chat template text of a tokenizer/model folder: DIR/chat_template.jinja if present, else
// tokenizer_config.json's "chat_template" (a string, or the entry named "default" of a list).
// nullopt when the folder has none. `dir` may also be the tokenizer.json file path.
std::optional<std::string> read_chat_template(const std::filesystem::path& dir);

// The template to use for a folder: `override_kind` if given, else the detected one. Throws
// TemplateError when there is no template or it is not one of the known three, saying so and
// naming the `--template instruct|thinking|hybrid` override.
TemplateKind resolve_template(const std::filesystem::path& dir,
                              std::optional<TemplateKind> override_kind = std::nullopt);

// json.dumps(value, ensure_ascii=False) with the default ", " / ": " separators and key order
// preserved: the `tojson` filter of HF's chat-template environment.
std::string py_json_dumps(const nlohmann::ordered_json& value);
// Python repr(float) (shortest round-trip digits; exponent form below 1e-4 and from 1e16).
std::string py_float_repr(double value);

}  // namespace qnext
