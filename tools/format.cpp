// Tool-result text formats (see format.h; must match tests/reference/demo_model/demo_tools.py).
#include "tools/format.h"

#include <string.h>

#include <utf8proc.h>

namespace qnext::tools {
namespace {

std::string_view rstrip_newlines(std::string_view s) {
    while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
    return s;
}

std::string format_seconds(double s) {
    std::string t = std::to_string(s);                      // "10.000000"
    t.erase(t.find_last_not_of('0') + 1);                   // "10."
    if (!t.empty() && t.back() == '.') t.pop_back();        // "10"
    return t;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

std::string format_process_result(const ProcessOutcome& p) {
    std::string text;
    auto add = [&](std::string_view part) {
        if (!text.empty()) text += '\n';
        text += part;
    };
    if (p.timed_out) add("error: timed out after " + format_seconds(p.timeout_s) + " s");
    if (std::string_view o = rstrip_newlines(p.out); !o.empty()) add(o);
    if (std::string_view e = rstrip_newlines(p.err); !e.empty()) add("stderr:\n" + std::string(e));
    if (!p.timed_out) {
        if (p.exit_code && *p.exit_code != 0) add("exit code: " + std::to_string(*p.exit_code));
        if (p.signal) {
            const char* abbrev = sigabbrev_np(*p.signal);
            add("killed by signal " + std::to_string(*p.signal) +
                (abbrev ? " (SIG" + std::string(abbrev) + ")" : std::string()));
        }
    }
    if (!p.limit.empty() && p.limit != "output") add("error: " + p.limit + " limit exceeded");
    if (p.truncated || p.limit == "output") add("[output truncated]");
    return text.empty() ? "(no output)" : sanitize_utf8(text);
}

std::string error_text(std::string_view message) {
    return sanitize_utf8("error: " + std::string(rstrip_newlines(message)));
}

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
    while (left > 0) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            n = 1;
        } else {
            out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
        }
        p += n;
        left -= n;
    }
    return out;
}

std::string cap_text(std::string s, std::size_t max_bytes) {
    if (s.size() <= max_bytes) return s;
    const std::size_t marker_budget = 48;
    const std::size_t keep = max_bytes > marker_budget ? max_bytes - marker_budget : 0;
    std::size_t head = keep / 2;
    std::size_t tail_start = s.size() - (keep - head);
    while (head > 0 && is_continuation(static_cast<unsigned char>(s[head]))) --head;
    while (tail_start < s.size() && is_continuation(static_cast<unsigned char>(s[tail_start]))) ++tail_start;
    return s.substr(0, head) + "\n[... " + std::to_string(tail_start - head) + " bytes omitted ...]\n" +
           s.substr(tail_start);
}

}  // namespace qnext::tools
