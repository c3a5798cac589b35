// The agent loop: one user turn = generate -> (execute the turn's tool calls concurrently -> append results ->
// generate)* -> final answer, stopping at max_steps, the token budget, or cancellation. Event-driven on
// Boost.Asio: no thread per session or per tool; generation runs on the engine thread (in-process backend)
// or on the network (remote backend), tools run in the sandbox, and every callback lands on the io_context.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "agent/backend.h"

namespace qnext::agent {

struct ToolOutcome {
    std::string text;     // what the model sees in <tool_response>
    bool is_error = false;
    double wall_ms = 0;
};

// Executes tool calls (the tool registry adapts to this). Implementations must call `done` exactly once,
// on the io_context, and never throw through it: errors become an error outcome.
class ToolExecutor {
public:
    virtual ~ToolExecutor() = default;
    virtual ojson declarations() const = 0;  // OpenAI function declarations, rendered into the prompt
    virtual void async_execute(const ToolCall& call, std::chrono::milliseconds timeout,
                               std::function<void(ToolOutcome)> done) = 0;
    virtual void cancel_all() = 0;
};

struct LoopLimits {
    int max_steps = 8;               // generations per user turn
    int max_tokens_per_step = 512;   // generated tokens per assistant message
    int max_total_tokens = 4096;     // generated tokens per user turn (all steps)
    std::chrono::milliseconds tool_timeout{30000};
    // Tool calls of one assistant message: calls past the first max_tool_calls_per_message are not executed
    // (each gets an error result saying so), and at most max_parallel_tools execute at once (the rest start
    // in call order as slots free up). A model that emits a thousand calls must not start a thousand processes.
    int max_tool_calls_per_message = 32;
    int max_parallel_tools = 4;
    // Malformed arguments and tool names are echoed into the history and error results cut to this size.
    size_t max_echo_bytes = 4096;
};

struct LoopOptions {
    LoopLimits limits;
    std::string tool_choice = "auto";  // auto | required | none | <tool name>
    bool reset_tool_choice = true;     // after a step that called tools, continue with "auto" (no forced loops)
    bool parallel_tool_calls = true;
    bool thinking = false;
    int thinking_budget = -1;
    SamplingParams sampling;
};

// What happened during a user turn, as a stream of events for the CLI / JSONL output.
struct LoopEvent {
    enum class Kind { StepStart, Generation, ToolCallStarted, ToolResult, StepDone, TurnDone };
    Kind kind;
    int step = 0;
    const GenerationEvent* generation = nullptr;  // Kind::Generation
    const ToolCall* call = nullptr;               // ToolCallStarted / ToolResult
    const ToolOutcome* outcome = nullptr;         // ToolResult
    const GenerationResult* result = nullptr;     // StepDone
};

enum class StopReason { FinalAnswer, MaxSteps, TokenBudget, Cancelled, Length, Error };
const char* to_string(StopReason r);

struct TurnOutcome {
    StopReason stop = StopReason::FinalAnswer;
    std::string final_answer;
    std::string error;
    int steps = 0;
    int64_t generated_tokens = 0;
    std::vector<TurnStats> step_stats;
    std::vector<std::string> tools_called;
};

class AgentLoop : public std::enable_shared_from_this<AgentLoop> {
public:
    using EventSink = std::function<void(const LoopEvent&)>;
    AgentLoop(boost::asio::io_context& io, Backend& backend, ToolExecutor& tools, LoopOptions options);

    // The conversation so far (OpenAI messages). A system message, if any, goes first.
    ojson& messages() { return messages_; }
    const ojson& messages() const { return messages_; }
    LoopOptions& options() { return options_; }

    // Appends the user message and runs the loop; `done` is called once on the io_context.
    void async_user_turn(const std::string& user_message, EventSink sink, std::function<void(TurnOutcome)> done);
    // The same, run to completion on the io_context (which nothing else may be running): for the CLI, the chat
    // REPL and tests. Other work queued on the io_context (timers, signals) runs meanwhile.
    TurnOutcome run_user_turn(const std::string& user_message, EventSink sink = {});
    // Cancels the running turn (generation and tools). The session stays usable.
    void cancel();
    bool busy() const { return busy_; }

private:
    void step();
    void on_generation(GenerationResult result);
    struct ToolBatch;
    void run_tools(std::vector<ToolCall> calls);
    void launch_tools(const std::shared_ptr<ToolBatch>& batch);
    void tool_done(const std::shared_ptr<ToolBatch>& batch, size_t i, ToolOutcome out);
    void tools_finished(const std::shared_ptr<ToolBatch>& batch);
    void finish(StopReason reason, std::string error = {});

    boost::asio::io_context& io_;
    Backend& backend_;
    ToolExecutor& tools_;
    LoopOptions options_;
    ojson messages_ = ojson::array();

    // Per-turn state.
    bool busy_ = false;
    bool cancelled_ = false;
    std::string turn_tool_choice_;
    EventSink sink_;
    std::function<void(TurnOutcome)> done_;
    TurnOutcome outcome_;
};

}  // namespace qnext::agent
