// Streaming parser for Qwen3 (hermes) tool calls in generated text. Feed decoded text deltas as
// they come (any split, several calls per delta); get events:
//   Reasoning      text before </think> (thinking mode only; never parsed for calls)
//   Text           ordinary content (the "\n" separators around calls are not reported)
//   CallStart      index + tool name (`name`), as soon as the name is complete
//   ArgumentsDelta index + the next fragment of the arguments JSON text (fragments concatenate to
//                  the full arguments text)
//   CallEnd        index + name + full arguments text (`text`) + parsed `arguments`, at </tool_call>
//   CallInvalid    index (-1 if no name was seen) + raw call text, for a call that is not valid JSON
//   CallTruncated  index + raw text, when generation stopped inside a call (never a CallEnd)
// finish_reason(): "length" when the token budget ran out (max_tokens), else "tool_calls" when at
// least one call completed, else "stop". A truncated call is never reported as complete.
//
// The Qwen3.5 XML form (<tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n...</function>\n
// </tool_call>) is parsed into the same events: the arguments are rebuilt as a JSON object text, a string
// parameter's raw value as a JSON string (streamed as it comes), any other value as the JSON it holds (a value
// that is not valid JSON is kept as a string); ArgumentsDelta fragments concatenate to the object's text.
#pragma once
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext::constrain {

struct ToolCallEvent {
    enum class Kind { Reasoning, Text, CallStart, ArgumentsDelta, CallEnd, CallInvalid, CallTruncated };
    Kind kind;
    int index = -1;
    std::string name;                     // CallStart, CallEnd
    std::string text;                     // delta / name / fragment / full arguments / raw text
    nlohmann::ordered_json arguments;     // CallEnd only
};

class ToolCallParser {
public:
    explicit ToolCallParser(bool thinking = false);
    // XML format: `string_params` names, per tool, the parameters whose values are raw strings.
    ToolCallParser(bool thinking, bool xml, std::map<std::string, std::set<std::string>> string_params);
    std::vector<ToolCallEvent> push(std::string_view text);
    // End of generation. `hit_length`: stopped because the token budget ran out.
    std::vector<ToolCallEvent> finish(bool hit_length);
    std::string finish_reason() const;
    int num_calls() const { return completed_; }

private:
    enum class Mode { Reasoning, Text, Header, Args, Tail, Raw, XmlParams, XmlValue, Done };
    void run(std::vector<ToolCallEvent>& out, bool final);
    bool xml_header(std::vector<ToolCallEvent>& out);
    bool xml_params(std::vector<ToolCallEvent>& out);
    bool xml_value(std::vector<ToolCallEvent>& out, bool final);
    void args_delta(std::vector<ToolCallEvent>& out, const std::string& frag);
    void emit_text(std::vector<ToolCallEvent>& out, std::string s);
    void end_call(std::vector<ToolCallEvent>& out, size_t close_at);

    Mode mode_;
    std::string buf_;            // unconsumed input
    std::string call_raw_;       // raw text of the current call (after <tool_call>)
    std::string args_;           // arguments text so far
    std::string pending_ws_;     // whitespace after a call, emitted only if more text follows
    std::string name_;
    bool content_started_ = false;
    int index_ = -1;             // index of the current call (-1 before CallStart)
    int next_index_ = 0;
    int completed_ = 0;
    // argument value scanner
    int depth_ = 0;
    bool in_string_ = false, escape_ = false, value_started_ = false, scalar_ = false;
    bool truncated_ = false, hit_length_ = false;
    // XML format
    bool xml_ = false;
    std::map<std::string, std::set<std::string>> string_params_;
    std::string param_;          // current parameter name
    std::string value_;          // current non-string parameter's value text
    bool param_is_string_ = false, any_param_ = false;
};

}  // namespace qnext::constrain
