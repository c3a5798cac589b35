#include "agent/constrain/regex.h"

#include <algorithm>
#include <stdexcept>

namespace qnext::constrain {

void CodepointSet::add(uint32_t lo, uint32_t hi) {
    if (lo > hi) return;
    ranges_.emplace_back(lo, hi);
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (auto r : ranges_) {
        if (!merged.empty() && r.first <= merged.back().second + 1)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    }
    ranges_ = std::move(merged);
}

CodepointSet CodepointSet::negated() const {
    CodepointSet out;
    uint32_t next = 0;
    for (auto [lo, hi] : ranges_) {
        if (lo > next) out.add(next, lo - 1);
        next = hi + 1;
    }
    if (next <= 0x10FFFF) out.add(next, 0x10FFFF);
    return out;
}

namespace {

using ByteSeq = std::vector<std::pair<uint8_t, uint8_t>>;

void encode_utf8(uint32_t cp, std::vector<uint8_t>& out) {
    out.clear();
    if (cp < 0x80) {
        out.push_back(static_cast<uint8_t>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<uint8_t>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<uint8_t>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<uint8_t>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<uint8_t>(0x80 | (cp & 0x3F)));
    }
}

// Splits [lo, hi] (no surrogates) into byte-range sequences (the utf8-ranges algorithm).
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteSeq>& out) {
    if (lo > hi) return;
    for (uint32_t m : {0x7Fu, 0x7FFu, 0xFFFFu})
        if (lo <= m && m < hi) {
            utf8_sequences(lo, m, out);
            utf8_sequences(m + 1, hi, out);
            return;
        }
    if (hi <= 0x7F) {
        out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
        return;
    }
    for (int i = 1; i < 4; ++i) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                utf8_sequences(lo, lo | m, out);
                utf8_sequences((lo | m) + 1, hi, out);
                return;
            }
            if ((hi & m) != m) {
                utf8_sequences(lo, (hi & ~m) - 1, out);
                utf8_sequences(hi & ~m, hi, out);
                return;
            }
        }
    }
    std::vector<uint8_t> a, b;
    encode_utf8(lo, a);
    encode_utf8(hi, b);
    ByteSeq seq;
    for (size_t i = 0; i < a.size(); ++i) seq.emplace_back(a[i], b[i]);
    out.push_back(std::move(seq));
}

void emit_raw_ranges(Nfa& nfa, int32_t from, int32_t to, const CodepointSet& set) {
    std::vector<ByteSeq> seqs;
    for (auto [lo, hi] : set.ranges()) {
        // never surrogates
        if (lo <= 0xDFFF && hi >= 0xD800) {
            if (lo < 0xD800) utf8_sequences(lo, 0xD7FF, seqs);
            if (hi > 0xDFFF) utf8_sequences(0xE000, hi, seqs);
        } else {
            utf8_sequences(lo, std::min<uint32_t>(hi, 0x10FFFF), seqs);
        }
    }
    for (const ByteSeq& seq : seqs) {
        int32_t cur = from;
        for (size_t i = 0; i < seq.size(); ++i) {
            int32_t next = i + 1 == seq.size() ? to : nfa.add_state();
            nfa.range(cur, seq[i].first, seq[i].second, next);
            cur = next;
        }
    }
}

std::string json_escape_of(uint32_t cp) {
    switch (cp) {
        case '"': return "\\\"";
        case '\\': return "\\\\";
        case '\b': return "\\b";
        case '\f': return "\\f";
        case '\n': return "\\n";
        case '\r': return "\\r";
        case '\t': return "\\t";
        default: {
            static const char* hex = "0123456789abcdef";
            return std::string("\\u00") + hex[(cp >> 4) & 0xF] + hex[cp & 0xF];
        }
    }
}

}  // namespace

void emit_utf8_char(Nfa& nfa, int32_t from, int32_t to, const CodepointSet& set) {
    emit_raw_ranges(nfa, from, to, set);
}

void emit_json_char(Nfa& nfa, int32_t from, int32_t to, const CodepointSet& set) {
    CodepointSet raw, escaped;
    CodepointSet needs_escape(0, 0x1F);
    needs_escape.add('"', '"');
    needs_escape.add('\\', '\\');
    for (auto [lo, hi] : set.ranges()) {
        for (auto [elo, ehi] : needs_escape.ranges()) {
            uint32_t a = std::max(lo, elo), b = std::min(hi, ehi);
            if (a <= b) escaped.add(a, b);
        }
    }
    CodepointSet not_escape = needs_escape.negated();
    for (auto [lo, hi] : set.ranges())
        for (auto [nlo, nhi] : not_escape.ranges()) {
            uint32_t a = std::max(lo, nlo), b = std::min(hi, nhi);
            if (a <= b) raw.add(a, b);
        }
    emit_raw_ranges(nfa, from, to, raw);
    for (auto [lo, hi] : escaped.ranges())
        for (uint32_t cp = lo; cp <= hi; ++cp) nfa.epsilon(nfa.literal(from, json_escape_of(cp)), to);
}

namespace {

class RegexParser {
public:
    explicit RegexParser(std::string_view p) : p_(p) {}

    Regex parse_top() {
        bool anchored_start = false, anchored_end = false;
        if (!p_.empty() && p_[0] == '^') {
            anchored_start = true;
            pos_ = 1;
        }
        if (!p_.empty() && p_.back() == '$') {
            size_t bs = 0;
            for (size_t i = p_.size() - 1; i > 0 && p_[i - 1] == '\\'; --i) ++bs;
            if (bs % 2 == 0 && p_.size() > pos_) {
                anchored_end = true;
                p_.remove_suffix(1);
            }
        }
        Regex body = parse_alt();
        if (pos_ != p_.size()) fail("unbalanced ')'");
        Regex any_run;
        any_run.kind = Regex::Kind::Repeat;
        any_run.min = 0;
        any_run.max = -1;
        Regex any;
        any.kind = Regex::Kind::Set;
        any.set = CodepointSet(0, 0x10FFFF);
        any_run.kids.push_back(any);
        Regex out;
        out.kind = Regex::Kind::Seq;
        if (!anchored_start) out.kids.push_back(any_run);
        out.kids.push_back(std::move(body));
        if (!anchored_end) out.kids.push_back(any_run);
        return out;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::invalid_argument("regex '" + std::string(p_) + "': " + what + " (at offset " +
                                    std::to_string(pos_) + ")");
    }
    bool at_end() const { return pos_ >= p_.size(); }
    char peek() const { return p_[pos_]; }

    Regex parse_alt() {
        Regex alt;
        alt.kind = Regex::Kind::Alt;
        alt.kids.push_back(parse_seq());
        while (!at_end() && peek() == '|') {
            ++pos_;
            alt.kids.push_back(parse_seq());
        }
        return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
    }

    Regex parse_seq() {
        Regex seq;
        seq.kind = Regex::Kind::Seq;
        while (!at_end() && peek() != '|' && peek() != ')') seq.kids.push_back(parse_repeat());
        return seq;
    }

    int parse_int() {
        if (at_end() || !isdigit(static_cast<unsigned char>(peek()))) fail("expected a number in {}");
        long v = 0;
        while (!at_end() && isdigit(static_cast<unsigned char>(peek()))) {
            v = v * 10 + (peek() - '0');
            if (v > 100000) fail("repetition bound too large");
            ++pos_;
        }
        return static_cast<int>(v);
    }

    Regex parse_repeat() {
        Regex atom = parse_atom();
        while (!at_end()) {
            char c = peek();
            int mn, mx;
            if (c == '*') {
                mn = 0, mx = -1, ++pos_;
            } else if (c == '+') {
                mn = 1, mx = -1, ++pos_;
            } else if (c == '?') {
                mn = 0, mx = 1, ++pos_;
            } else if (c == '{' && pos_ + 1 < p_.size() && isdigit(static_cast<unsigned char>(p_[pos_ + 1]))) {
                ++pos_;
                mn = parse_int();
                mx = mn;
                if (!at_end() && peek() == ',') {
                    ++pos_;
                    mx = (!at_end() && peek() == '}') ? -1 : parse_int();
                }
                if (at_end() || peek() != '}') fail("unterminated {n,m}");
                ++pos_;
                if (mx >= 0 && mx < mn) fail("{n,m} with m < n");
                if (mn > 1000 || mx > 1000) fail("repetition bound above 1000 is not supported");
            } else {
                break;
            }
            if (!at_end() && peek() == '?') ++pos_;   // lazy: same language
            if (!at_end() && peek() == '+') fail("possessive quantifiers are not supported");
            Regex rep;
            rep.kind = Regex::Kind::Repeat;
            rep.min = mn;
            rep.max = mx;
            rep.kids.push_back(std::move(atom));
            atom = std::move(rep);
        }
        return atom;
    }

    uint32_t next_codepoint() {
        auto c = static_cast<unsigned char>(p_[pos_]);
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (pos_ + static_cast<size_t>(len) > p_.size()) fail("invalid UTF-8");
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (int i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<unsigned char>(p_[pos_ + static_cast<size_t>(i)]) & 0x3F);
        pos_ += static_cast<size_t>(len);
        return cp;
    }

    uint32_t parse_hex(int n) {
        uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
            if (at_end() || !isxdigit(static_cast<unsigned char>(peek()))) fail("bad hex escape");
            char c = p_[pos_++];
            v = v * 16 + static_cast<uint32_t>(isdigit(static_cast<unsigned char>(c)) ? c - '0' : (tolower(c) - 'a' + 10));
        }
        return v;
    }

    static CodepointSet digits() { return CodepointSet('0', '9'); }
    static CodepointSet word() {
        CodepointSet s('0', '9');
        s.add('A', 'Z');
        s.add('a', 'z');
        s.add('_', '_');
        return s;
    }
    static CodepointSet space() {
        CodepointSet s('\t', '\r');
        s.add(' ', ' ');
        s.add(0xA0, 0xA0);
        s.add(0x1680, 0x1680);
        s.add(0x2000, 0x200A);
        s.add(0x2028, 0x2029);
        s.add(0x202F, 0x202F);
        s.add(0x205F, 0x205F);
        s.add(0x3000, 0x3000);
        s.add(0xFEFF, 0xFEFF);
        return s;
    }

    // After a backslash. `in_class`: inside [...].
    CodepointSet parse_escape(bool in_class) {
        if (at_end()) fail("trailing backslash");
        char c = p_[pos_++];
        switch (c) {
            case 'd': return digits();
            case 'D': return digits().negated();
            case 'w': return word();
            case 'W': return word().negated();
            case 's': return space();
            case 'S': return space().negated();
            case 'n': return CodepointSet('\n', '\n');
            case 'r': return CodepointSet('\r', '\r');
            case 't': return CodepointSet('\t', '\t');
            case 'f': return CodepointSet('\f', '\f');
            case 'v': return CodepointSet('\v', '\v');
            case '0': return CodepointSet(0, 0);
            case 'x': { uint32_t v = parse_hex(2); return CodepointSet(v, v); }
            case 'u': { uint32_t v = parse_hex(4); return CodepointSet(v, v); }
            case 'b':
                if (in_class) return CodepointSet('\b', '\b');
                fail("word boundary \\b is not supported");
            case 'B': fail("\\B is not supported");
            case 'p': case 'P': fail("Unicode property escapes \\p{..} are not supported");
            case 'k': fail("named backreferences are not supported");
            default:
                if (isdigit(static_cast<unsigned char>(c))) fail("backreferences are not supported");
                if (isalpha(static_cast<unsigned char>(c))) fail(std::string("unknown escape \\") + c);
                --pos_;
                { uint32_t cp = next_codepoint(); return CodepointSet(cp, cp); }
        }
    }

    CodepointSet parse_class() {   // after '['
        bool negate = false;
        if (!at_end() && peek() == '^') {
            negate = true;
            ++pos_;
        }
        CodepointSet set;
        bool first = true;
        while (true) {
            if (at_end()) fail("unterminated character class");
            if (peek() == ']' && !first) {
                ++pos_;
                break;
            }
            first = false;
            CodepointSet item;
            bool single = true;
            uint32_t lo = 0;
            if (peek() == '\\') {
                ++pos_;
                item = parse_escape(true);
                single = item.ranges().size() == 1 && item.ranges()[0].first == item.ranges()[0].second;
                lo = item.ranges()[0].first;
            } else {
                lo = next_codepoint();
                item = CodepointSet(lo, lo);
            }
            if (single && pos_ + 1 < p_.size() && peek() == '-' && p_[pos_ + 1] != ']') {
                ++pos_;
                uint32_t hi;
                if (peek() == '\\') {
                    ++pos_;
                    CodepointSet h = parse_escape(true);
                    if (h.ranges().size() != 1 || h.ranges()[0].first != h.ranges()[0].second)
                        fail("class range ending in a class escape");
                    hi = h.ranges()[0].first;
                } else {
                    hi = next_codepoint();
                }
                if (hi < lo) fail("class range out of order");
                item = CodepointSet(lo, hi);
            }
            set.add(item);
        }
        return negate ? set.negated() : set;
    }

    Regex parse_atom() {
        char c = peek();
        Regex r;
        r.kind = Regex::Kind::Set;
        if (c == '(') {
            ++pos_;
            if (!at_end() && peek() == '?') {
                if (pos_ + 1 < p_.size() && p_[pos_ + 1] == ':')
                    pos_ += 2;
                else
                    fail("look-around and named groups are not supported");
            }
            Regex inner = parse_alt();
            if (at_end() || peek() != ')') fail("missing ')'");
            ++pos_;
            return inner;
        }
        if (c == '[') {
            ++pos_;
            r.set = parse_class();
            return r;
        }
        if (c == '.') {
            ++pos_;
            r.set = CodepointSet('\n', '\n');
            r.set.add('\r', '\r');
            r.set.add(0x2028, 0x2029);
            r.set = r.set.negated();
            return r;
        }
        if (c == '\\') {
            ++pos_;
            r.set = parse_escape(false);
            return r;
        }
        if (c == '^' || c == '$') fail("anchors are only supported at the start/end of the pattern");
        if (c == '*' || c == '+' || c == '?') fail(std::string("nothing to repeat before '") + c + "'");
        uint32_t cp = next_codepoint();
        r.set = CodepointSet(cp, cp);
        return r;
    }

    std::string_view p_;
    size_t pos_ = 0;
};

}  // namespace

Regex parse_regex(std::string_view pattern) { return RegexParser(pattern).parse_top(); }

void emit_regex_json(Nfa& nfa, int32_t from, int32_t to, const Regex& re) {
    switch (re.kind) {
        case Regex::Kind::Set:
            emit_json_char(nfa, from, to, re.set);
            return;
        case Regex::Kind::Seq: {
            int32_t cur = from;
            for (const Regex& k : re.kids) {
                int32_t next = nfa.add_state();
                emit_regex_json(nfa, cur, next, k);
                cur = next;
            }
            nfa.epsilon(cur, to);
            return;
        }
        case Regex::Kind::Alt:
            for (const Regex& k : re.kids) emit_regex_json(nfa, from, to, k);
            return;
        case Regex::Kind::Repeat: {
            int32_t cur = from;
            for (int i = 0; i < re.min; ++i) {
                int32_t next = nfa.add_state();
                emit_regex_json(nfa, cur, next, re.kids[0]);
                cur = next;
            }
            if (re.max < 0) {
                int32_t loop = nfa.add_state();
                nfa.epsilon(cur, loop);
                int32_t back = nfa.add_state();
                emit_regex_json(nfa, loop, back, re.kids[0]);
                nfa.epsilon(back, loop);
                nfa.epsilon(loop, to);
                return;
            }
            for (int i = re.min; i < re.max; ++i) {
                nfa.epsilon(cur, to);
                int32_t next = nfa.add_state();
                emit_regex_json(nfa, cur, next, re.kids[0]);
                cur = next;
            }
            nfa.epsilon(cur, to);
            return;
        }
    }
}

}  // namespace qnext::constrain
