#include "agent/event_printer.h"

#include <unistd.h>

#include <cstdarg>

namespace qnext::agent {

namespace {
std::string clip(const std::string& s, size_t n) {
    if (s.size() <= n) return s;
    size_t cut = n;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
    return s.substr(0, cut) + "…";
}
std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}
}  // namespace

std::string format_stats(const TurnStats& s) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "prompt %lld tok (reused %lld, prefilled %lld) · TTFT %.1f ms · %lld tok at %.1f tok/s",
                  static_cast<long long>(s.prompt_tokens), static_cast<long long>(s.reused_tokens),
                  static_cast<long long>(s.prefill_tokens), s.ttft_ms, static_cast<long long>(s.generated_tokens),
                  s.decode_tok_s);
    return buf;
}

ojson stats_json(const TurnStats& s) {
    return ojson{{"prompt_tokens", s.prompt_tokens}, {"reused_tokens", s.reused_tokens},
                 {"prefill_tokens", s.prefill_tokens}, {"generated_tokens", s.generated_tokens},
                 {"ttft_ms", s.ttft_ms},             {"decode_tok_s", s.decode_tok_s},
                 {"total_ms", s.total_ms}};
}

EventPrinter::EventPrinter(bool json, std::FILE* out) : json_(json), out_(out), color_(!json && isatty(fileno(out))) {}

void EventPrinter::json_event(ojson j) {
    if (!json_) return;
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
}

void EventPrinter::end_stream() {
    if (stream_ == Stream::None) return;
    if (color_ && stream_ == Stream::Reasoning) std::fputs("\x1b[0m", out_);
    std::fputc('\n', out_);
    stream_ = Stream::None;
}

void EventPrinter::on_event(const LoopEvent& ev) {
    using K = LoopEvent::Kind;
    if (json_) {
        ojson j = ojson::object();
        j["turn"] = turn_;
        j["step"] = ev.step;
        switch (ev.kind) {
            case K::StepStart: j["event"] = "step_start"; break;
            case K::Generation: {
                const GenerationEvent& g = *ev.generation;
                using G = GenerationEvent::Kind;
                const char* names[] = {"reasoning", "text", "tool_call_start", "tool_call_arguments", "tool_call_done"};
                j["event"] = names[static_cast<int>(g.kind)];
                if (g.kind == G::ToolCallStart || g.kind == G::ToolCallDone) {
                    j["index"] = g.index;
                    j["name"] = g.text;
                } else {
                    if (g.kind == G::ToolCallArguments) j["index"] = g.index;
                    j["text"] = g.text;
                }
                break;
            }
            case K::ToolCallStarted:
                j["event"] = "tool_call";
                j["id"] = ev.call->id;
                j["name"] = ev.call->name;
                j["arguments"] = ev.call->arguments.is_discarded() ? ojson(ev.call->arguments_text) : ev.call->arguments;
                break;
            case K::ToolResult:
                j["event"] = "tool_result";
                j["id"] = ev.call->id;
                j["name"] = ev.call->name;
                j["is_error"] = ev.outcome->is_error;
                j["wall_ms"] = ev.outcome->wall_ms;
                j["text"] = ev.outcome->text;
                break;
            case K::StepDone:
                j["event"] = "step_done";
                j["finish_reason"] = to_string(ev.result->finish);
                if (!ev.result->error.empty()) j["error"] = ev.result->error;
                if (ev.result->truncated_call) j["truncated_call"] = *ev.result->truncated_call;
                j["stats"] = stats_json(ev.result->stats);
                break;
            case K::TurnDone: return;  // the caller emits turn_done with the outcome
        }
        json_event(std::move(j));
        return;
    }
    switch (ev.kind) {
        case K::StepStart: break;
        case K::Generation: {
            const GenerationEvent& g = *ev.generation;
            using G = GenerationEvent::Kind;
            if (g.kind == G::Reasoning) {
                if (stream_ != Stream::Reasoning) {
                    end_stream();
                    // dim on a terminal; marked in piped output, so that a script can tell it from the answer
                    std::fputs(color_ ? "\x1b[2m" : "[thinking] ", out_);
                    stream_ = Stream::Reasoning;
                }
                std::fputs(g.text.c_str(), out_);
            } else if (g.kind == G::Text) {
                if (stream_ != Stream::Text) {
                    end_stream();
                    stream_ = Stream::Text;
                }
                std::fputs(g.text.c_str(), out_);
            }
            std::fflush(out_);
            break;
        }
        case K::ToolCallStarted: {
            end_stream();
            std::string args = ev.call->arguments.is_discarded() ? ev.call->arguments_text : ev.call->arguments.dump();
            std::fprintf(out_, "%s→ %s %s%s\n", color_ ? "\x1b[36m" : "", ev.call->name.c_str(),
                         clip(one_line(args), 200).c_str(), color_ ? "\x1b[0m" : "");
            break;
        }
        case K::ToolResult: {
            end_stream();
            std::fprintf(out_, "%s← %s%s (%.0f ms): %s%s\n", color_ ? "\x1b[33m" : "", ev.call->name.c_str(),
                         ev.outcome->is_error ? " error" : "", ev.outcome->wall_ms,
                         clip(one_line(ev.outcome->text), 200).c_str(), color_ ? "\x1b[0m" : "");
            break;
        }
        case K::StepDone:
            end_stream();
            if (!ev.result->error.empty()) std::fprintf(out_, "error: %s\n", ev.result->error.c_str());
            if (ev.result->truncated_call)
                std::fprintf(out_, "(tool call %s cut off by the token limit: not executed)\n", ev.result->truncated_call->c_str());
            std::fflush(out_);   // the stats go to stderr: the answer's line must be out first (one terminal or pipe)
            std::fprintf(stderr, "%s[step %d] %s · %s%s\n", color_ ? "\x1b[2m" : "", ev.step,
                         to_string(ev.result->finish), format_stats(ev.result->stats).c_str(), color_ ? "\x1b[0m" : "");
            break;
        case K::TurnDone: end_stream(); break;
    }
    std::fflush(out_);
}

}  // namespace qnext::agent
