// The agent loop talks to a model through this interface: the in-process engine (default) or a remote
// OpenAI-compatible endpoint. A backend generates one assistant message for a rendered conversation,
// streaming events as it goes; callbacks are always invoked on the io_context the backend was made with.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext::agent {

using ojson = nlohmann::ordered_json;

struct ToolCall {
    std::string id;              // call id (generated locally for the in-process backend)
    std::string name;
    ojson arguments;             // parsed arguments object
    std::string arguments_text;  // exactly as generated
};

enum class FinishReason { Stop, ToolCalls, Length, Cancelled, Error };
const char* to_string(FinishReason r);

struct SamplingParams {
    double temperature = 0.0;  // 0 = greedy
    double top_p = 1.0;
    int top_k = 0;
    double min_p = 0.0;
    double presence_penalty = 0.0;
    double repetition_penalty = 1.0;
    uint64_t seed = 0;
};

struct GenerationRequest {
    ojson messages = ojson::array();  // OpenAI-style chat messages
    ojson tools = ojson::array();     // OpenAI function declarations
    std::string tool_choice = "auto"; // auto | required | none | <tool name>
    bool parallel_tool_calls = true;
    bool thinking = false;            // thinking template / enable_thinking
    int max_tokens = 512;             // generated tokens for this message (incl. reasoning)
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
    FinishReason finish = FinishReason::Stop;
    std::string error;      // set when finish == Error
    TurnStats stats;
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
