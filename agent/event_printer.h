// Presents agent-loop events: human-readable (streamed text, reasoning dimmed on a terminal, tool calls and
// results compact, per-step timings) or JSONL (one JSON object per line, for automation).
#pragma once
#include <cstdio>
#include <string>

#include "agent/agent_loop.h"

namespace qnext::agent {

class EventPrinter {
public:
    EventPrinter(bool json, std::FILE* out = stdout);
    void set_turn(int turn) { turn_ = turn; }
    void on_event(const LoopEvent& ev);
    // Emits a free-form JSON event (JSON mode) or nothing.
    void json_event(ojson j);
    bool json() const { return json_; }

private:
    void end_stream();
    bool json_;
    std::FILE* out_;
    bool color_;
    int turn_ = 0;
    enum class Stream { None, Reasoning, Text } stream_ = Stream::None;
};

// One line of timings for a step: prompt tokens, reused, prefilled, TTFT, decode speed.
std::string format_stats(const TurnStats& s);
ojson stats_json(const TurnStats& s);

}  // namespace qnext::agent
