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

ToolCallParser::ToolCallParser(bool thinking, bool xml, std::map<std::string, std::set<std::string>> string_params)
    : mode_(thinking ? Mode::Reasoning : Mode::Text), xml_(xml), string_params_(std::move(string_params)) {}

void ToolCallParser::args_delta(std::vector<ToolCallEvent>& out, const std::string& frag) {
    if (frag.empty()) return;
    args_ += frag;
    if (!out.empty() && out.back().kind == ToolCallEvent::Kind::ArgumentsDelta && out.back().index == index_)
        out.back().text += frag;
    else
        out.push_back({ToolCallEvent::Kind::ArgumentsDelta, index_, name_, frag, {}});
}

namespace {
constexpr std::string_view kFunction = "<function=", kFunctionEnd = "</function>", kParam = "<parameter=",
                           kParamEnd = "\n</parameter>";

// JSON string escaping of raw text (nlohmann's dump of a string without the quotes).
std::string json_escape(const std::string& s) {
    std::string d = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return d.substr(1, d.size() - 2);
}
}  // namespace

// After <tool_call>: ws "<function=" NAME ">" [\n]. true = progressed; false = need more text.
bool ToolCallParser::xml_header(std::vector<ToolCallEvent>& out) {
    size_t i = 0;
    while (i < buf_.size() && is_ws(buf_[i])) ++i;
    const std::string_view rest = std::string_view(buf_).substr(i);
    if (rest.size() < kFunction.size()) {
        if (kFunction.substr(0, rest.size()) != rest || buf_.find(kClose) != std::string::npos) mode_ = Mode::Raw;
        return mode_ == Mode::Raw;
    }
    if (rest.substr(0, kFunction.size()) != kFunction) {
        mode_ = Mode::Raw;
        return true;
    }
    const size_t gt = buf_.find('>', i + kFunction.size());
    const size_t nl = buf_.find('\n', i + kFunction.size());
    if (gt == std::string::npos || (nl != std::string::npos && nl < gt)) {
        if (nl != std::string::npos || buf_.find(kClose) != std::string::npos) mode_ = Mode::Raw;
        return mode_ == Mode::Raw;
    }
    if (gt + 1 == buf_.size()) return false;   // wait for the newline after '>' (or the first parameter)
    name_ = buf_.substr(i + kFunction.size(), gt - i - kFunction.size());
    size_t end = gt + 1;
    if (buf_[end] == '\n') ++end;
    call_raw_ += buf_.substr(0, end);
    buf_.erase(0, end);
    index_ = next_index_++;
    out.push_back({ToolCallEvent::Kind::CallStart, index_, name_, "", {}});
    any_param_ = false;
    mode_ = Mode::XmlParams;
    return true;
}

// Between parameters: "<parameter=P>\n" starts one, "</function>" ends the call.
bool ToolCallParser::xml_params(std::vector<ToolCallEvent>& out) {
    size_t i = 0;
    while (i < buf_.size() && is_ws(buf_[i])) ++i;
    const std::string_view rest = std::string_view(buf_).substr(i);
    auto prefix_of = [&](std::string_view marker) { return rest.size() < marker.size() && marker.substr(0, rest.size()) == rest; };
    if (rest.empty() || prefix_of(kParam) || prefix_of(kFunctionEnd)) return false;
    if (rest.substr(0, kFunctionEnd.size()) == kFunctionEnd) {
        call_raw_ += buf_.substr(0, i + kFunctionEnd.size());
        buf_.erase(0, i + kFunctionEnd.size());
        args_delta(out, any_param_ ? "}" : "{}");
        mode_ = Mode::Tail;
        return true;
    }
    if (rest.substr(0, kParam.size()) != kParam) {
        mode_ = Mode::Raw;
        return true;
    }
    const size_t gt = buf_.find('>', i + kParam.size());
    if (gt == std::string::npos) {
        if (buf_.find('\n', i + kParam.size()) != std::string::npos) mode_ = Mode::Raw;
        return mode_ == Mode::Raw;
    }
    if (gt + 1 == buf_.size()) return false;
    param_ = buf_.substr(i + kParam.size(), gt - i - kParam.size());
    size_t end = gt + 1;
    if (buf_[end] == '\n') ++end;
    call_raw_ += buf_.substr(0, end);
    buf_.erase(0, end);
    const auto it = string_params_.find(name_);
    param_is_string_ = it != string_params_.end() && it->second.count(param_);
    args_delta(out, std::string(any_param_ ? ", " : "{") + nlohmann::json(param_).dump() + ": " + (param_is_string_ ? "\"" : ""));
    any_param_ = true;
    value_.clear();
    mode_ = Mode::XmlValue;
    return true;
}

// A parameter's value up to "\n</parameter>": a string streams as escaped JSON text; any other value is
// converted when complete.
bool ToolCallParser::xml_value(std::vector<ToolCallEvent>& out, bool final) {
    const size_t at = buf_.find(kParamEnd);
    const size_t take = at != std::string::npos ? at : buf_.size() - (final ? 0 : partial_marker(buf_, kParamEnd));
    std::string chunk = buf_.substr(0, take);
    // keep an incomplete UTF-8 sequence for the next delta (escaping needs whole characters)
    size_t cut = chunk.size();
    if (at == std::string::npos && !final) {
        size_t k = chunk.size(), back = 0;
        while (k > 0 && back < 4 && (static_cast<unsigned char>(chunk[k - 1]) & 0xC0) == 0x80) --k, ++back;
        if (k > 0) {
            const auto lead = static_cast<unsigned char>(chunk[k - 1]);
            const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (len > back + 1) cut = k - 1;
        }
    }
    chunk.resize(cut);
    call_raw_ += chunk;
    buf_.erase(0, chunk.size());
    if (param_is_string_) args_delta(out, json_escape(chunk));
    else value_ += chunk;
    if (at == std::string::npos || buf_.compare(0, kParamEnd.size(), kParamEnd) != 0) return false;
    call_raw_ += std::string(kParamEnd);
    buf_.erase(0, kParamEnd.size());
    if (param_is_string_) {
        args_delta(out, "\"");
    } else {
        auto v = nlohmann::ordered_json::parse(value_, nullptr, false);
        args_delta(out, v.is_discarded() ? nlohmann::json(value_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                         : v.dump());
    }
    mode_ = Mode::XmlParams;
    return true;
}

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
            if (xml_) throw std::runtime_error("not an XML tool call");
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
                if (xml_) {
                    if (!xml_header(out)) return;
                    break;
                }
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
            case Mode::XmlParams:
                if (!xml_params(out)) return;
                break;
            case Mode::XmlValue:
                if (!xml_value(out, final)) return;
                break;
            case Mode::Tail: {
                size_t close = buf_.find(kClose);
                if (close == std::string::npos) {
                    // the tail must look like ws '}' ws (XML: ws); keep buffering it
                    return;
                }
                std::string tail = buf_.substr(0, close);
                call_raw_ += tail;
                std::string t;
                for (char c : tail)
                    if (!is_ws(c)) t += c;
                if (t != (xml_ ? "" : "}")) {   // unexpected content after the arguments
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
    const bool in_call = mode_ == Mode::Header || mode_ == Mode::Args || mode_ == Mode::Tail || mode_ == Mode::Raw ||
                         mode_ == Mode::XmlParams || mode_ == Mode::XmlValue;
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
