#include "agent/agent_loop.h"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace qnext::agent {

const char* to_string(StopReason r) {
    switch (r) {
        case StopReason::FinalAnswer: return "final_answer";
        case StopReason::MaxSteps: return "max_steps";
        case StopReason::TokenBudget: return "token_budget";
        case StopReason::Cancelled: return "cancelled";
        case StopReason::Length: return "length";
        case StopReason::Error: return "error";
    }
    return "?";
}

AgentLoop::AgentLoop(boost::asio::io_context& io, Backend& backend, ToolExecutor& tools, LoopOptions options)
    : io_(io), backend_(backend), tools_(tools), options_(std::move(options)) {}

void AgentLoop::async_user_turn(const std::string& user_message, EventSink sink,
                                std::function<void(TurnOutcome)> done) {
    if (busy_) throw std::logic_error("AgentLoop: a turn is already running");
    busy_ = true;
    cancelled_ = false;
    sink_ = sink ? std::move(sink) : EventSink([](const LoopEvent&) {});
    done_ = std::move(done);
    outcome_ = TurnOutcome{};
    turn_tool_choice_ = options_.tool_choice;
    messages_.push_back(ojson{{"role", "user"}, {"content", user_message}});
    boost::asio::post(io_, [self = shared_from_this()] { self->step(); });
}

TurnOutcome AgentLoop::run_user_turn(const std::string& user_message, EventSink sink) {
    TurnOutcome out;
    bool done = false;
    async_user_turn(user_message, std::move(sink), [&](TurnOutcome o) {
        out = std::move(o);
        done = true;
    });
    io_.restart();
    while (!done && io_.run_one() > 0) {
    }
    return out;
}

void AgentLoop::cancel() {
    if (!busy_) return;
    cancelled_ = true;
    backend_.cancel();
    tools_.cancel_all();
}

void AgentLoop::step() {
    if (cancelled_) return finish(StopReason::Cancelled);
    const LoopLimits& lim = options_.limits;
    if (outcome_.steps >= lim.max_steps) return finish(StopReason::MaxSteps);
    int64_t budget_left = lim.max_total_tokens - outcome_.generated_tokens;
    if (budget_left <= 0) return finish(StopReason::TokenBudget);

    GenerationRequest req;
    req.messages = messages_;
    req.tools = tools_.declarations();
    req.tool_choice = req.tools.empty() ? "none" : turn_tool_choice_;
    req.parallel_tool_calls = options_.parallel_tool_calls;
    req.thinking = options_.thinking;
    req.thinking_budget = options_.thinking_budget;
    req.max_tokens = static_cast<int>(std::min<int64_t>(lim.max_tokens_per_step, budget_left));
    req.sampling = options_.sampling;

    const int step_index = outcome_.steps++;
    sink_(LoopEvent{LoopEvent::Kind::StepStart, step_index});
    auto self = shared_from_this();
    backend_.async_generate(
        req,
        [self, step_index](const GenerationEvent& ev) {
            LoopEvent le{LoopEvent::Kind::Generation, step_index};
            le.generation = &ev;
            self->sink_(le);
        },
        [self](GenerationResult result) { self->on_generation(std::move(result)); });
}

void AgentLoop::on_generation(GenerationResult result) {
    const int step_index = outcome_.steps - 1;
    outcome_.generated_tokens += result.stats.generated_tokens;
    outcome_.step_stats.push_back(result.stats);
    {
        LoopEvent le{LoopEvent::Kind::StepDone, step_index};
        le.result = &result;
        sink_(le);
    }
    if (result.finish == FinishReason::Error) return finish(StopReason::Error, result.error);

    // Malformed calls are echoed (history, events, error results) cut to max_echo_bytes: a server or model that
    // sends a megabyte of broken arguments must not have it repeated in every later request.
    const size_t echo = options_.limits.max_echo_bytes;
    for (ToolCall& c : result.tool_calls) {
        c.name = clip_for_echo(c.name, echo);
        c.id = clip_for_echo(c.id, echo);
        if (c.arguments.is_discarded() || !c.arguments.is_object()) {
            c.arguments_text = clip_for_echo(c.arguments_text, echo);
        }
    }

    // Record the assistant message (only complete calls; a truncated call never enters the history as a call).
    ojson msg = ojson::object();
    msg["role"] = "assistant";
    msg["content"] = result.content;
    if (!result.reasoning.empty()) msg["reasoning_content"] = result.reasoning;
    if (!result.tool_calls.empty()) {
        ojson calls = ojson::array();
        for (const ToolCall& c : result.tool_calls) {
            calls.push_back(ojson{{"id", c.id},
                                  {"type", "function"},
                                  {"function", {{"name", c.name},
                                                {"arguments", c.arguments.is_object() ? c.arguments
                                                                                     : ojson(c.arguments_text)}}}});
        }
        msg["tool_calls"] = std::move(calls);
    }
    if (result.finish != FinishReason::Cancelled || !result.content.empty() || !result.tool_calls.empty())
        messages_.push_back(msg);

    switch (result.finish) {
        case FinishReason::Cancelled: return finish(StopReason::Cancelled);
        case FinishReason::Length:
            outcome_.final_answer = result.content;
            return finish(outcome_.generated_tokens >= options_.limits.max_total_tokens ? StopReason::TokenBudget
                                                                                       : StopReason::Length,
                          result.truncated_call ? "the tool call '" + *result.truncated_call +
                                                      "' was cut off by the token limit and was not executed"
                                                : std::string());
        case FinishReason::Stop:
            outcome_.final_answer = result.content;
            return finish(StopReason::FinalAnswer);
        case FinishReason::ToolCalls:
            if (cancelled_) return finish(StopReason::Cancelled);
            if (options_.reset_tool_choice) turn_tool_choice_ = "auto";
            return run_tools(std::move(result.tool_calls));
        case FinishReason::Error: break;
    }
}

// The calls of one assistant message, executing: results land in call order whatever order they finish in.
struct AgentLoop::ToolBatch {
    std::vector<ToolCall> calls;
    std::vector<ToolOutcome> outcomes;
    int step = 0;
    size_t executable = 0;  // calls[0, executable) are executed, the rest refused
    size_t next = 0;        // next call to start
    size_t running = 0;
    size_t pending = 0;     // executable calls not finished yet
};

void AgentLoop::run_tools(std::vector<ToolCall> calls) {
    auto batch = std::make_shared<ToolBatch>();
    batch->calls = std::move(calls);
    batch->outcomes.resize(batch->calls.size());
    batch->step = outcome_.steps - 1;
    const size_t n = batch->calls.size();
    batch->executable = std::min(n, static_cast<size_t>(std::max(0, options_.limits.max_tool_calls_per_message)));
    batch->pending = batch->executable;
    for (size_t i = batch->executable; i < n; ++i) {
        batch->outcomes[i] = ToolOutcome{"error: not executed: this message made " + std::to_string(n) +
                                             " tool calls and at most " + std::to_string(batch->executable) +
                                             " are executed per message (max_tool_calls_per_message); make the "
                                             "remaining calls in a later message",
                                         true, 0};
        LoopEvent ev{LoopEvent::Kind::ToolResult, batch->step};
        ev.call = &batch->calls[i];
        ev.outcome = &batch->outcomes[i];
        sink_(ev);
    }
    if (batch->pending == 0) return tools_finished(batch);
    launch_tools(batch);
}

void AgentLoop::launch_tools(const std::shared_ptr<ToolBatch>& batch) {
    const size_t slots = static_cast<size_t>(std::max(1, options_.limits.max_parallel_tools));
    auto self = shared_from_this();
    while (batch->running < slots && batch->next < batch->executable) {
        const size_t i = batch->next++;
        ++batch->running;
        const ToolCall& call = batch->calls[i];
        auto on_done = [self, batch, i](ToolOutcome out) { self->tool_done(batch, i, std::move(out)); };
        if (cancelled_) {  // a queued call that had not started when the turn was cancelled
            boost::asio::post(io_, [on_done] { on_done(ToolOutcome{"error: cancelled before it started", true, 0}); });
            continue;
        }
        outcome_.tools_called.push_back(call.name);
        LoopEvent le{LoopEvent::Kind::ToolCallStarted, batch->step};
        le.call = &call;
        sink_(le);
        if (call.arguments.is_discarded() || !call.arguments.is_object()) {
            // arguments_text was cut to max_echo_bytes in on_generation.
            std::string why = call.arguments.is_discarded()
                                  ? "error: the arguments are not valid JSON" +
                                        (call.arguments_error.empty() ? "" : " (" + call.arguments_error + ")")
                                  : std::string("error: the arguments are not a JSON object");
            boost::asio::post(io_, [on_done, text = why + ": " + call.arguments_text] {
                on_done(ToolOutcome{text, true, 0});
            });
            continue;
        }
        tools_.async_execute(call, options_.limits.tool_timeout, on_done);
    }
}

void AgentLoop::tool_done(const std::shared_ptr<ToolBatch>& batch, size_t i, ToolOutcome out) {
    batch->outcomes[i] = std::move(out);
    --batch->running;
    LoopEvent ev{LoopEvent::Kind::ToolResult, batch->step};
    ev.call = &batch->calls[i];
    ev.outcome = &batch->outcomes[i];
    sink_(ev);
    if (--batch->pending == 0) return tools_finished(batch);
    launch_tools(batch);
}

void AgentLoop::tools_finished(const std::shared_ptr<ToolBatch>& batch) {
    for (size_t k = 0; k < batch->calls.size(); ++k) {
        messages_.push_back(ojson{{"role", "tool"},
                                  {"tool_call_id", batch->calls[k].id},
                                  {"name", batch->calls[k].name},
                                  {"content", batch->outcomes[k].text}});
    }
    step();
}

void AgentLoop::finish(StopReason reason, std::string error) {
    outcome_.stop = reason;
    outcome_.error = std::move(error);
    busy_ = false;
    LoopEvent le{LoopEvent::Kind::TurnDone, outcome_.steps};
    sink_(le);
    auto done = std::move(done_);
    auto sink = std::move(sink_);
    done(std::move(outcome_));
}

}  // namespace qnext::agent
