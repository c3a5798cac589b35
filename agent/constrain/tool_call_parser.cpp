#include "agent/constrain/tool_call_parser.h"
#include "common/json_limits.h"

#include <algorithm>

namespace qnext::constrain {

namespace {
constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>", kThinkEnd = "</think>";

// Length of the longest suffix of `s` that is a proper prefix of `marker` (kept back: it may be
// the start of a marker split across deltas).
size_t partial_marker(std::string_view s, std::string_view marker) {
    for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
        if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
    return 0;
}

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

enum class HeaderScan { NeedMore, Mismatch, Matched };

// Matches `{"name": "<name>", "arguments": ` with flexible whitespace at the start of `s`.
HeaderScan scan_header(std::string_view s, std::string& name, size_t& consumed) {
    size_t i = 0;
    auto ws = [&] {
        while (i < s.size() && is_ws(s[i])) ++i;
    };
    auto lit = [&](std::string_view l) -> HeaderScan {
        for (char c : l) {
            if (i == s.size()) return HeaderScan::NeedMore;
            if (s[i] != c) return HeaderScan::Mismatch;
            ++i;
        }
        return HeaderScan::Matched;
    };
    ws();
    for (auto part : {std::string_view("{")}) {
        if (auto r = lit(part); r != HeaderScan::Matched) return r;
    }
    ws();
    if (auto r = lit("\"name\""); r != HeaderScan::Matched) return r;
    ws();
    if (auto r = lit(":"); r != HeaderScan::Matched) return r;
    ws();
    if (auto r = lit("\""); r != HeaderScan::Matched) return r;
    const size_t name_start = i;
    bool esc = false;
    for (;; ++i) {
        if (i == s.size()) return HeaderScan::NeedMore;
        if (esc) {
            esc = false;
        } else if (s[i] == '\\') {
            esc = true;
        } else if (s[i] == '"') {
            break;
        }
    }
    try {
        name = nlohmann::json::parse("\"" + std::string(s.substr(name_start, i - name_start)) + "\"").get<std::string>();
    } catch (const nlohmann::json::exception&) {
        return HeaderScan::Mismatch;
    }
    ++i;
    ws();
    if (auto r = lit(","); r != HeaderScan::Matched) return r;
    ws();
    if (auto r = lit("\"arguments\""); r != HeaderScan::Matched) return r;
    ws();
    if (auto r = lit(":"); r != HeaderScan::Matched) return r;
    ws();
    if (i == s.size()) return HeaderScan::NeedMore;
    consumed = i;
    return HeaderScan::Matched;
}
}  // namespace

ToolCallParser::ToolCallParser(bool thinking) : mode_(thinking ? Mode::Reasoning : Mode::Text) {}

std::vector<ToolCallEvent> ToolCallParser::push(std::string_view text) {
    std::vector<ToolCallEvent> out;
    if (mode_ == Mode::Done) return out;
    buf_.append(text);
    run(out, false);
    return out;
}

void ToolCallParser::emit_text(std::vector<ToolCallEvent>& out, std::string s) {
    if (!content_started_) {   // content starts after the separator newlines (as the template strips them)
        size_t k = 0;
        while (k < s.size() && s[k] == '\n') ++k;
        s.erase(0, k);
        if (s.empty()) return;
        content_started_ = true;
    }
    if (s.empty()) return;
    if (!out.empty() && out.back().kind == ToolCallEvent::Kind::Text)
        out.back().text += s;
    else
        out.push_back({ToolCallEvent::Kind::Text, -1, "", std::move(s), {}});
}

void ToolCallParser::end_call(std::vector<ToolCallEvent>& out, size_t close_at) {
    // close_at: position of </tool_call> in buf_
    buf_.erase(0, close_at + kClose.size());
    try {
        if (mode_ == Mode::Raw) {
            auto j = parse_json_limited<nlohmann::ordered_json>(call_raw_);
            if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("arguments"))
                throw std::runtime_error("not a tool call object");
            index_ = next_index_++;
            const std::string args = j["arguments"].dump();
            out.push_back({ToolCallEvent::Kind::CallStart, index_, j["name"].get<std::string>(), "", {}});
            out.push_back({ToolCallEvent::Kind::ArgumentsDelta, index_, "", args, {}});
            out.push_back({ToolCallEvent::Kind::CallEnd, index_, j["name"].get<std::string>(), args, j["arguments"]});
        } else {
            if (mode_ != Mode::Tail) throw std::runtime_error("arguments not complete");
            auto args = parse_json_limited<nlohmann::ordered_json>(args_);
            out.push_back({ToolCallEvent::Kind::CallEnd, index_, name_, args_, std::move(args)});
        }
        ++completed_;
    } catch (const std::exception&) {
        out.push_back({ToolCallEvent::Kind::CallInvalid, index_, name_, call_raw_, {}});
    }
    mode_ = Mode::Text;
    index_ = -1;
    call_raw_.clear();
    args_.clear();
}

void ToolCallParser::run(std::vector<ToolCallEvent>& out, bool final) {
    while (!buf_.empty()) {
        switch (mode_) {
            case Mode::Done: return;
            case Mode::Reasoning: {
                size_t at = buf_.find(kThinkEnd);
                if (at == std::string::npos) {
                    size_t keep = final ? 0 : partial_marker(buf_, kThinkEnd);
                    if (buf_.size() > keep)
                        out.push_back({ToolCallEvent::Kind::Reasoning, -1, "", buf_.substr(0, buf_.size() - keep), {}});
                    buf_.erase(0, buf_.size() - keep);
                    return;
                }
                if (at) out.push_back({ToolCallEvent::Kind::Reasoning, -1, "", buf_.substr(0, at), {}});
                buf_.erase(0, at + kThinkEnd.size());
                mode_ = Mode::Text;
                break;
            }
            case Mode::Text: {
                size_t at = buf_.find(kOpen);
                std::string before = at == std::string::npos ? buf_ : buf_.substr(0, at);
                size_t keep = (at == std::string::npos && !final) ? partial_marker(buf_, kOpen) : 0;
                before.resize(before.size() - keep);
                buf_.erase(0, before.size());
                // Trailing whitespace is held back until we know what follows: before <tool_call>
                // its newlines are the template's separator, after the last call it is dropped.
                std::string ws = pending_ws_ + before;
                pending_ws_.clear();
                size_t body = ws.size();
                while (body > 0 && is_ws(ws[body - 1])) --body;
                if (at != std::string::npos) {
                    while (!ws.empty() && ws.back() == '\n') ws.pop_back();
                    if (body == 0 && next_index_ > 0) ws.clear();   // separator between calls
                } else if (!final) {
                    pending_ws_ = ws.substr(body);
                    ws.resize(body);
                } else if (body == 0 && next_index_ > 0) {
                    ws.clear();
                }
                emit_text(out, ws);
                if (at == std::string::npos) return;
                buf_.erase(0, kOpen.size());
                mode_ = Mode::Header;
                name_.clear();
                call_raw_.clear();
                args_.clear();
                depth_ = 0;
                in_string_ = escape_ = value_started_ = scalar_ = false;
                break;
            }
            case Mode::Header: {
                size_t close = buf_.find(kClose);
                std::string name;
                size_t consumed = 0;
                HeaderScan r = scan_header(close == std::string::npos ? std::string_view(buf_)
                                                                      : std::string_view(buf_).substr(0, close),
                                           name, consumed);
                if (r == HeaderScan::Matched) {
                    call_raw_ += buf_.substr(0, consumed);
                    buf_.erase(0, consumed);
                    index_ = next_index_++;
                    name_ = name;
                    out.push_back({ToolCallEvent::Kind::CallStart, index_, name, "", {}});
                    mode_ = Mode::Args;
                    break;
                }
                if (r == HeaderScan::Mismatch) {
                    mode_ = Mode::Raw;
                    break;
                }
                if (close == std::string::npos) return;   // need more text
                mode_ = Mode::Raw;                        // closed before the header completed
                break;
            }
            case Mode::Args: {
                size_t i = 0;
                bool done = false;
                for (; i < buf_.size() && !done; ++i) {
                    char c = buf_[i];
                    if (!value_started_) {
                        if (is_ws(c)) continue;
                        value_started_ = true;
                        scalar_ = c != '{' && c != '[' && c != '"';
                    }
                    if (scalar_) {
                        if (is_ws(c) || c == '}' || c == ',' || c == '<') {
                            done = true;
                            break;
                        }
                        continue;
                    }
                    if (in_string_) {
                        if (escape_) escape_ = false;
                        else if (c == '\\') escape_ = true;
                        else if (c == '"') {
                            in_string_ = false;
                            if (depth_ == 0) done = true;
                        }
                        continue;
                    }
                    if (c == '"') in_string_ = true;
                    else if (c == '{' || c == '[') ++depth_;
                    else if (c == '}' || c == ']') {
                        if (--depth_ == 0) done = true;
                    }
                }
                std::string frag = buf_.substr(0, i);
                // never emit whitespace before the value starts as an argument fragment
                size_t lead = 0;
                if (args_.empty()) while (lead < frag.size() && is_ws(frag[lead])) ++lead;
                if (frag.size() > lead) {
                    out.push_back({ToolCallEvent::Kind::ArgumentsDelta, index_, name_, frag.substr(lead), {}});
                    args_ += frag.substr(lead);
                }
                call_raw_ += frag;
                buf_.erase(0, i);
                if (!done) {
                    if (final && scalar_ && !args_.empty()) mode_ = Mode::Tail;
                    return;
                }
                mode_ = Mode::Tail;
                break;
            }
            case Mode::Tail: {
                size_t close = buf_.find(kClose);
                if (close == std::string::npos) {
                    // the tail must look like ws '}' ws; keep buffering it
                    return;
                }
                std::string tail = buf_.substr(0, close);
                call_raw_ += tail;
                std::string t;
                for (char c : tail)
                    if (!is_ws(c)) t += c;
                if (t != "}") {   // unexpected content after the arguments
                    out.push_back({ToolCallEvent::Kind::CallInvalid, index_, name_, call_raw_, {}});
                    buf_.erase(0, close + kClose.size());
                    mode_ = Mode::Text;
                    index_ = -1;
                    call_raw_.clear();
                    args_.clear();
                    break;
                }
                end_call(out, close);
                break;
            }
            case Mode::Raw: {
                size_t close = buf_.find(kClose);
                if (close == std::string::npos) {
                    size_t keep = final ? 0 : partial_marker(buf_, kClose);
                    call_raw_ += buf_.substr(0, buf_.size() - keep);
                    buf_.erase(0, buf_.size() - keep);
                    return;
                }
                call_raw_ += buf_.substr(0, close);
                end_call(out, close);
                break;
            }
        }
    }
}

std::vector<ToolCallEvent> ToolCallParser::finish(bool hit_length) {
    std::vector<ToolCallEvent> out;
    if (mode_ == Mode::Done) return out;
    hit_length_ = hit_length;
    const bool in_call = mode_ == Mode::Header || mode_ == Mode::Args || mode_ == Mode::Tail || mode_ == Mode::Raw;
    if (in_call) {
        call_raw_ += buf_;
        buf_.clear();
        truncated_ = true;
        out.push_back({hit_length ? ToolCallEvent::Kind::CallTruncated : ToolCallEvent::Kind::CallInvalid, index_,
                       name_, call_raw_, {}});
    } else {
        run(out, true);
    }
    mode_ = Mode::Done;
    return out;
}

std::string ToolCallParser::finish_reason() const {
    if (hit_length_) return "length";
    if (truncated_) return "stop";
    return completed_ > 0 ? "tool_calls" : "stop";
}

}  // namespace qnext::constrain
