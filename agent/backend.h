// The agent loop talks to a model through this interface: the in-process engine (default) or a remote
// OpenAI-compatible endpoint. A backend generates one assistant message for a rendered conversation,
// streaming events as it goes; callbacks are always invoked on the io_context the backend was made with.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext::agent {

using ojson = nlohmann::ordered_json;

struct ToolCall {
    std::string id;              // call id (generated locally for the in-process backend)
    std::string name;
    ojson arguments;             // parsed arguments object
    std::string arguments_text;  // exactly as generated
    std::string arguments_error; // why `arguments` is discarded (invalid JSON, nested too deep), when it is
};

// Text from a model or server echoed back (into the history, events, error messages) is cut to `max` bytes
// with a marker, so a huge malformed tool call is not repeated in full on every later request. The cut backs
// off to a UTF-8 character boundary: the history is dumped as JSON, which refuses a split character.
inline std::string clip_for_echo(std::string_view s, size_t max = 4096) {
    if (s.size() <= max) return std::string(s);
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return std::string(s.substr(0, cut)) + "...[truncated: " + std::to_string(s.size()) + " bytes in all]";
}

enum class FinishReason { Stop, ToolCalls, Length, Cancelled, Error };
const char* to_string(FinishReason r);

struct SamplingParams {
    double temperature = 0.0;  // 0 = greedy
    double top_p = 1.0;
    int top_k = 0;
    double min_p = 0.0;
    double presence_penalty = 0.0;
    double frequency_penalty = 0.0;
    double repetition_penalty = 1.0;
    uint64_t seed = 0;
};

struct GenerationRequest {
    ojson messages = ojson::array();  // OpenAI-style chat messages
    ojson tools = ojson::array();     // OpenAI function declarations
    std::string tool_choice = "auto"; // auto | required | none | <tool name>
    bool parallel_tool_calls = true;
    bool thinking = false;            // thinking template / enable_thinking
    int max_tokens = 512;             // generated tokens for this message (incl. reasoning); -1: the rest of
                                      // the context
    // The answer is one JSON value matching this schema (OpenAI response_format; json_object = {"type":
    // "object"}). Only without tools (or with tool_choice none).
    std::optional<ojson> response_schema;
    int thinking_budget = -1;         // force </think> after this many reasoning tokens (-1 = unlimited)
    SamplingParams sampling;
};

// Streaming events. `index` numbers the tool calls within the message.
struct GenerationEvent {
    enum class Kind { Reasoning, Text, ToolCallStart, ToolCallArguments, ToolCallDone };
    Kind kind;
    std::string text;  // reasoning/text delta, argument fragment, or tool name on ToolCallStart
    int index = 0;
};

struct TurnStats {
    int64_t prompt_tokens = 0;     // tokens of the rendered conversation
    int64_t reused_tokens = 0;     // of which served from the kept state (no recompute)
    int64_t prefill_tokens = 0;    // of which computed now
    int64_t generated_tokens = 0;
    double ttft_ms = 0;            // request start -> first generated token
    double decode_tok_s = 0;       // generated tokens / decode time
    double total_ms = 0;
};

struct GenerationResult {
    std::string content;    // answer text (tool-call markup removed)
    std::string reasoning;  // reasoning_content (thinking mode)
    std::vector<ToolCall> tool_calls;        // complete calls only
    // A tool call the token limit cut off (finish == Length): its name ("?" when not yet known), never executed.
    std::optional<std::string> truncated_call;
    FinishReason finish = FinishReason::Stop;
    std::string error;      // set when finish == Error
    bool invalid_request = false;  // the error is the request's fault (bad messages, schema, too long)
    TurnStats stats;
};

// Bounds on what a remote (OpenAI-compatible) server may send, so a hostile or broken one can neither exhaust
// memory nor hold a run forever. The defaults are far above any real reply.
struct RemoteOptions {
    size_t max_line_bytes = size_t{8} << 20;       // one SSE line or event (one JSON chunk)
    size_t max_content_bytes = size_t{16} << 20;   // one message: content + reasoning + tool names and arguments
    size_t max_argument_bytes = size_t{4} << 20;   // arguments text of one tool call
    size_t max_tool_calls = 1024;                  // tool-call slots per message (the loop executes fewer)
    std::chrono::milliseconds connect_timeout{30000};  // resolve + connect
    std::chrono::milliseconds idle_timeout{60000};     // no byte from the server for this long = failure
};

class Backend {
public:
    using EventHandler = std::function<void(const GenerationEvent&)>;
    using DoneHandler = std::function<void(GenerationResult)>;
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // Starts generating; at most one generation per backend at a time.
    virtual void async_generate(const GenerationRequest& request, EventHandler on_event, DoneHandler on_done) = 0;
    // Cancels the running generation (token granularity); on_done then reports FinishReason::Cancelled.
    virtual void cancel() = 0;

    // Session persistence: the backend's own state (the in-process engine's sequence state and checkpoints),
    // written after the session's messages in a session file. Remote backends keep nothing.
    virtual void save_state(std::ostream& out) const { (void)out; }
    virtual void load_state(std::istream& in) { (void)in; }
};

}  // namespace qnext::agent
