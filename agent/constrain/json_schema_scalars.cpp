// Scalars of the JSON-schema compiler: strings (plain, length-bounded, pattern, format), integers
// and numbers with bounds, and the format table.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "agent/constrain/grammar.h"
#include "agent/constrain/json_schema.h"
#include "agent/constrain/json_schema_internal.h"
#include "agent/constrain/regex.h"

namespace qnext::constrain {
namespace detail {

void emit_plain_string_char(Nfa& nfa, int32_t from, int32_t to) {
    // raw: U+0020.. except '"' (U+0022) and '\\' (U+005C)
    CodepointSet allowed(0x20, 0x21);
    allowed.add(0x23, 0x5B);
    allowed.add(0x5D, 0x10FFFF);
    emit_utf8_char(nfa, from, to, allowed);
    int32_t esc = nfa.add_state();
    nfa.range(from, '\\', '\\', esc);
    for (char c : std::string("\"\\/bfnrt")) nfa.range(esc, c, c, to);
    // \uXXXX without surrogates: first hex digit not d/D, or d/D followed by 0-7
    int32_t u = nfa.add_state(), h1 = nfa.add_state(), h2 = nfa.add_state(), h3 = nfa.add_state();
    int32_t d = nfa.add_state();
    nfa.range(esc, 'u', 'u', u);
    for (auto [lo, hi] : {std::pair{'0', '9'}, {'a', 'c'}, {'e', 'f'}, {'A', 'C'}, {'E', 'F'}}) nfa.range(u, lo, hi, h1);
    nfa.range(u, 'd', 'd', d);
    nfa.range(u, 'D', 'D', d);
    nfa.range(d, '0', '7', h1);
    for (auto [a, b] : {std::pair{h1, h2}, {h2, h3}, {h3, to}}) {
        nfa.range(a, '0', '9', b);
        nfa.range(a, 'a', 'f', b);
        nfa.range(a, 'A', 'F', b);
    }
}

void emit_plain_string(Nfa& nfa, int32_t from, int32_t to) {
    const int32_t body = nfa.add_state();
    nfa.range(from, '"', '"', body);
    emit_plain_string_char(nfa, body, body);
    nfa.range(body, '"', '"', to);
}

namespace {

using DigitSeq = std::vector<std::pair<char, char>>;

void same_length(const std::string& x, const std::string& y, DigitSeq prefix, std::vector<DigitSeq>& out) {
    if (x.empty()) {
        out.push_back(std::move(prefix));
        return;
    }
    const size_t rest = x.size() - 1;
    if (x[0] == y[0]) {
        prefix.emplace_back(x[0], x[0]);
        same_length(x.substr(1), y.substr(1), std::move(prefix), out);
        return;
    }
    if (x.substr(1) == std::string(rest, '0') && y.substr(1) == std::string(rest, '9')) {
        prefix.emplace_back(x[0], y[0]);
        for (size_t i = 0; i < rest; ++i) prefix.emplace_back('0', '9');
        out.push_back(std::move(prefix));
        return;
    }
    DigitSeq low = prefix;
    low.emplace_back(x[0], x[0]);
    same_length(x.substr(1), std::string(rest, '9'), low, out);
    if (x[0] + 1 <= y[0] - 1) {
        DigitSeq mid = prefix;
        mid.emplace_back(static_cast<char>(x[0] + 1), static_cast<char>(y[0] - 1));
        for (size_t i = 0; i < rest; ++i) mid.emplace_back('0', '9');
        out.push_back(std::move(mid));
    }
    DigitSeq high = prefix;
    high.emplace_back(y[0], y[0]);
    same_length(std::string(rest, '0'), y.substr(1), high, out);
}

// Digit strings (no leading zeros) of all integers in [a, b], 0 <= a <= b.
void digit_patterns(int64_t a, int64_t b, std::vector<DigitSeq>& out) {
    int64_t p = 1;
    for (int len = 1; len <= 18; ++len, p *= 10) {
        int64_t lo = std::max<int64_t>(a, len == 1 ? 0 : p);
        int64_t hi = std::min<int64_t>(b, p * 10 - 1);
        if (lo <= hi) same_length(std::to_string(lo), std::to_string(hi), {}, out);
        if (p * 10 - 1 >= b) break;
    }
}

void emit_digits(Nfa& nfa, int32_t from, int32_t to, int64_t a, int64_t b) {
    std::vector<DigitSeq> seqs;
    digit_patterns(a, b, seqs);
    for (const DigitSeq& seq : seqs) {
        int32_t cur = from;
        for (size_t i = 0; i < seq.size(); ++i) {
            int32_t next = i + 1 == seq.size() ? to : nfa.add_state();
            nfa.range(cur, seq[i].first, seq[i].second, next);
            cur = next;
        }
    }
}

}  // namespace

void emit_int_range(Nfa& nfa, int32_t from, int32_t to, int64_t lo, int64_t hi) {
    lo = std::max(lo, -kIntCap);
    hi = std::min(hi, kIntCap);
    if (lo > hi) throw std::invalid_argument("empty integer range");
    if (hi >= 0) emit_digits(nfa, from, to, std::max<int64_t>(lo, 0), hi);
    if (lo < 0) {
        int32_t minus = nfa.add_state();
        nfa.range(from, '-', '-', minus);
        emit_digits(nfa, minus, to, std::max<int64_t>(1, -hi), -lo);
    }
}

const char* format_regex(const std::string& f) {
    // Dates: years 1000-2999, month lengths exact, February 29 only in leap years (divisible by 4, and
    // centuries only when divisible by 400).
#define QN_DATE                                                                                              \
    "(?:[12]\\d{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))" \
    "|(?:[12]\\d(?:0[48]|[2468][048]|[13579][26])|(?:12|16|20|24|28)00)-02-29)"
#define QN_TIME "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)"
#define QN_LABEL "[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*"
    if (f == "date") return "^" QN_DATE "$";
    if (f == "time") return "^" QN_TIME "$";
    if (f == "date-time") return "^" QN_DATE "T" QN_TIME "$";
    if (f == "uuid") return "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
    if (f == "email") return "^[A-Za-z0-9_%+-]+(?:\\.[A-Za-z0-9_%+-]+)*@" QN_LABEL "(?:\\." QN_LABEL ")+$";
    if (f == "uri") return "^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\\-._~!$&'()*+,;=:@/?#]|%[0-9A-Fa-f]{2})*$";
    if (f == "ipv4") return "^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$";
    if (f == "hostname") return "^" QN_LABEL "(?:\\." QN_LABEL ")*$";
#undef QN_DATE
#undef QN_TIME
#undef QN_LABEL
    return nullptr;
}

std::string json_literal(const nlohmann::ordered_json& v) {
    if (v.is_object()) {
        std::string out = "{";
        bool first = true;
        for (const auto& [k, x] : v.items()) {
            if (!first) out += ", ";
            first = false;
            out += nlohmann::ordered_json(k).dump() + ": " + json_literal(x);
        }
        return out + "}";
    }
    if (v.is_array()) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + json_literal(v[i]);
        return out + "]";
    }
    return v.dump();
}

}  // namespace detail

using detail::kIntCap;

void JsonSchemaCompiler::emit_string(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path) {
    const bool has_len = s.contains("minLength") || s.contains("maxLength");
    auto count = [&](const char* kw, int64_t dflt) -> int64_t {
        if (!s.contains(kw)) return dflt;
        const json& v = s[kw];
        if (!v.is_number_integer() || v.get<int64_t>() < 0)
            throw SchemaError(path + "/" + kw, kw, "must be a non-negative integer");
        return v.get<int64_t>();
    };
    std::string pattern;
    if (s.contains("format")) {
        if (!s["format"].is_string()) throw SchemaError(path + "/format", "format", "must be a string");
        const char* re = detail::format_regex(s["format"].get<std::string>());
        if (!re) throw SchemaError(path + "/format", "format", "unsupported format '" + s["format"].get<std::string>() +
                                   "' (supported: date, time, date-time, uuid, email, uri, ipv4, hostname)");
        if (s.contains("pattern")) throw SchemaError(path, "format", "format together with pattern is not supported");
        pattern = re;
    }
    if (s.contains("pattern")) {
        if (!s["pattern"].is_string()) throw SchemaError(path + "/pattern", "pattern", "must be a string");
        pattern = s["pattern"].get<std::string>();
        if (pattern.size() > detail::kMaxPatternBytes)
            throw SchemaError(path + "/pattern", "pattern", "a pattern of " + std::to_string(pattern.size()) +
                                                                " bytes, more than the limit of " + std::to_string(detail::kMaxPatternBytes));
    }
    if (!pattern.empty() || s.contains("format")) {
        if (has_len)
            throw SchemaError(path, s.contains("minLength") ? "minLength" : "maxLength",
                              "length bounds together with pattern/format are not supported");
        Regex re;
        try {
            re = parse_regex(pattern);
        } catch (const std::invalid_argument& e) {
            throw SchemaError(path + (s.contains("format") ? "/format" : "/pattern"),
                              s.contains("format") ? "format" : "pattern", e.what());
        }
        int32_t a = nfa.add_state(), b = nfa.add_state();
        nfa.range(from, '"', '"', a);
        const size_t before = nfa.num_states();
        emit_regex_json(nfa, a, b, re);
        // Repetitions expand: (x{1,100}){1,100} is 10,000 states whose subset construction takes seconds.
        constexpr size_t kMaxPatternStates = 4096;
        if (nfa.num_states() - before > kMaxPatternStates)
            throw SchemaError(path + (s.contains("format") ? "/format" : "/pattern"), s.contains("format") ? "format" : "pattern",
                              "the pattern expands to " + std::to_string(nfa.num_states() - before) +
                                  " automaton states, more than the limit of " + std::to_string(kMaxPatternStates) +
                                  " (large or nested repetition counts)");
        nfa.range(b, '"', '"', to);
        return;
    }
    if (!has_len) {
        nfa.call(from, string_rule(), to);
        return;
    }
    const int64_t mn = count("minLength", 0), mx = count("maxLength", -1);
    if (mx >= 0 && mx < mn) throw SchemaError(path, "maxLength", "maxLength < minLength");
    if (mn > 1000 || mx > 1000) throw SchemaError(path, mx > 1000 ? "maxLength" : "minLength",
                                                  "length bounds above 1000 are not supported");
    nfa.call(from, counted_string_rule(static_cast<int32_t>(mn), static_cast<int32_t>(mx)), to);
}

// '"', mn..mx characters (mx < 0: no upper bound), '"': one rule per bound pair, marked so that the engine
// derives its per-position mask entries from a vocabulary-wide table (engine.h) instead of one trie walk each.
int32_t JsonSchemaCompiler::counted_string_rule(int32_t mn, int32_t mx) {
    auto it = counted_rules_.find({mn, mx});
    if (it != counted_rules_.end()) return it->second;
    const int32_t rule = rules_.declare("string{" + std::to_string(mn) + "," + (mx < 0 ? "" : std::to_string(mx)) + "}");
    counted_rules_.emplace(std::make_pair(mn, mx), rule);
    rules_.mark_counted_string(rule, CountedString{mn, mx});
    Nfa& nfa = rules_.nfa(rule);
    int32_t cur = nfa.add_state();
    nfa.range(nfa.start, '"', '"', cur);
    int32_t close = nfa.add_state();
    nfa.range(close, '"', '"', nfa.final_state);
    for (int32_t i = 0; i < mn; ++i) {
        int32_t next = nfa.add_state();
        detail::emit_plain_string_char(nfa, cur, next);
        cur = next;
    }
    if (mx < 0) {
        detail::emit_plain_string_char(nfa, cur, cur);
        nfa.epsilon(cur, close);
        return rule;
    }
    for (int32_t i = mn; i < mx; ++i) {
        nfa.epsilon(cur, close);
        int32_t next = nfa.add_state();
        detail::emit_plain_string_char(nfa, cur, next);
        cur = next;
    }
    nfa.epsilon(cur, close);
    return rule;
}

namespace {

// Integral bound of keyword `kw` (draft 2020-12 numbers; draft-4 boolean exclusive flags handled by caller).
std::optional<double> bound(const nlohmann::ordered_json& s, const char* kw, const std::string& path) {
    if (!s.contains(kw)) return std::nullopt;
    const auto& v = s[kw];
    if (v.is_boolean()) return std::nullopt;
    if (!v.is_number()) throw SchemaError(path + "/" + kw, kw, "must be a number");
    return v.get<double>();
}

struct Bound {
    double value;
    bool strict;
    const char* keyword;
};

// A bound on a magnitude: integer part and the exact decimal digits of its fraction (no trailing zeros).
struct MagBound {
    int64_t ip;
    std::string frac;
    bool strict;
};

MagBound mag_bound(const Bound& b, const std::string& path) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(b.value), std::chars_format::fixed);   // shortest exact
    std::string t(buf, r.ptr);
    size_t dot = t.find('.');
    MagBound m{std::stoll(t.substr(0, dot)), dot == std::string::npos ? "" : t.substr(dot + 1), b.strict};
    while (!m.frac.empty() && m.frac.back() == '0') m.frac.pop_back();
    if (m.frac.size() > 15)
        throw SchemaError(path + "/" + b.keyword, b.keyword, "bounds with more than 15 fraction digits are not supported");
    return m;
}

// Fraction digits D (1..15) after a '.' at `dot`, such that 0.D compares with the optional bounds
// lo (0.D >= lo, or > when strict) and hi (0.D <= hi, or <): a digit-by-digit comparison automaton whose
// states are (digits read, still equal to lo's prefix, still equal to hi's prefix).
void emit_fraction_digits(Nfa& nfa, int32_t dot, int32_t to, const std::optional<MagBound>& lo,
                          const std::optional<MagBound>& hi) {
    std::map<std::tuple<int, bool, bool>, int32_t> states;
    std::vector<std::tuple<int, bool, bool>> work;
    auto state = [&](int i, bool le, bool he) {
        auto key = std::make_tuple(i, le, he);
        auto it = states.find(key);
        if (it != states.end()) return it->second;
        int32_t st = i == 0 ? dot : nfa.add_state();
        states.emplace(key, st);
        work.push_back(key);
        return st;
    };
    auto digit_at = [](const std::string& f, int i) { return i < static_cast<int>(f.size()) ? f[static_cast<size_t>(i)] - '0' : 0; };
    state(0, lo.has_value(), hi.has_value());
    while (!work.empty()) {
        auto [i, le, he] = work.back();
        work.pop_back();
        const int32_t st = states.at({i, le, he});
        if (i > 0) {
            bool ok_lo = !le || (i >= static_cast<int>(lo->frac.size()) && !lo->strict);
            bool ok_hi = !he || i < static_cast<int>(hi->frac.size()) || !hi->strict;
            if (ok_lo && ok_hi) nfa.epsilon(st, to);
        }
        if (i == 15) continue;
        int32_t run_target = -1, run_lo = 0;
        for (int d = 0; d <= 10; ++d) {
            int32_t target = -1;
            if (d < 10) {
                bool le2 = le, he2 = he, dead = false;
                if (le) {
                    int f = digit_at(lo->frac, i);
                    dead |= d < f;
                    le2 = d == f;
                }
                if (he) {
                    int f = digit_at(hi->frac, i);
                    dead |= d > f;
                    he2 = d == f;
                }
                if (!dead) target = state(i + 1, le2, he2);
            }
            if (target != run_target) {
                if (run_target >= 0) nfa.range(st, '0' + run_lo, '0' + d - 1, run_target);
                run_target = target;
                run_lo = d;
            }
        }
    }
}

// Magnitudes X.D with a <= (or <) X.D <= (or <) b, each bound optional (X >= 0): integer parts whose whole
// unit interval fits take any digits; the integer parts of the bounds themselves compare their digits.
void emit_fraction_magnitudes(Nfa& nfa, int32_t from, int32_t to, const std::optional<MagBound>& a,
                              const std::optional<MagBound>& b) {
    const int64_t free_lo = a ? (a->frac.empty() && !a->strict ? a->ip : a->ip + 1) : 0;
    const int64_t free_hi = b ? b->ip - 1 : kIntCap;
    auto digits_after = [&](int64_t x_lo, int64_t x_hi, const std::optional<MagBound>& lo, const std::optional<MagBound>& hi) {
        if (x_lo > x_hi) return;
        int32_t ip = nfa.add_state(), dot = nfa.add_state();
        detail::emit_int_range(nfa, from, ip, x_lo, x_hi);
        nfa.range(ip, '.', '.', dot);
        emit_fraction_digits(nfa, dot, to, lo, hi);
    };
    digits_after(free_lo, free_hi, std::nullopt, std::nullopt);
    std::optional<int64_t> xa, xb;
    if (a && (!a->frac.empty() || a->strict)) xa = a->ip;
    if (b && (!b->frac.empty() || !b->strict)) xb = b->ip;
    if (xa && xb && *xa == *xb) return digits_after(*xa, *xa, a, b);
    if (xa && (!b || *xa < b->ip)) digits_after(*xa, *xa, a, std::nullopt);
    if (xb && (!a || *xb > a->ip)) digits_after(*xb, *xb, std::nullopt, b);
}

}  // namespace

void JsonSchemaCompiler::emit_number(Nfa& nfa, int32_t from, int32_t to, const json& s, const std::string& path,
                                     bool integer) {
    std::optional<double> mn = bound(s, "minimum", path), mx = bound(s, "maximum", path);
    std::optional<double> xmn = bound(s, "exclusiveMinimum", path), xmx = bound(s, "exclusiveMaximum", path);
    if (s.contains("exclusiveMinimum") && s["exclusiveMinimum"].is_boolean() && s["exclusiveMinimum"].get<bool>())
        xmn = mn, mn.reset();
    if (s.contains("exclusiveMaximum") && s["exclusiveMaximum"].is_boolean() && s["exclusiveMaximum"].get<bool>())
        xmx = mx, mx.reset();
    const bool bounded = mn || mx || xmn || xmx;
    auto check_size = [&](const std::optional<double>& v, const char* kw) {
        if (v && !(std::fabs(*v) <= 1e15)) throw SchemaError(path + "/" + kw, kw, "bound too large");
    };
    check_size(mn, "minimum");
    check_size(mx, "maximum");
    check_size(xmn, "exclusiveMinimum");
    check_size(xmx, "exclusiveMaximum");
    // Inclusive integer bounds L..H of the integer values allowed.
    int64_t lo = -kIntCap, hi = kIntCap;
    if (mn) lo = std::max(lo, static_cast<int64_t>(std::ceil(*mn)));
    if (xmn) lo = std::max(lo, static_cast<int64_t>(std::floor(*xmn)) + 1);
    if (mx) hi = std::min(hi, static_cast<int64_t>(std::floor(*mx)));
    if (xmx) hi = std::min(hi, static_cast<int64_t>(std::ceil(*xmx)) - 1);
    if (integer) {
        if (lo > hi) throw SchemaError(path, "minimum", "no integer satisfies the bounds");
        detail::emit_int_range(nfa, from, to, lo, hi);
        return;
    }
    // The tighter of each pair (an exclusive bound wins a tie).
    std::optional<Bound> low, high;
    auto tighter = [&](std::optional<Bound>& cur, const std::optional<double>& v, bool strict, bool is_low, const char* kw) {
        if (!v) return;
        if (!cur || (is_low ? *v > cur->value : *v < cur->value) || (*v == cur->value && strict))
            cur = Bound{*v, strict, kw};
    };
    tighter(low, mn, false, true, "minimum");
    tighter(low, xmn, true, true, "exclusiveMinimum");
    tighter(high, mx, false, false, "maximum");
    tighter(high, xmx, true, false, "exclusiveMaximum");
    if (low && high && (low->value > high->value || (low->value == high->value && (low->strict || high->strict))))
        throw SchemaError(path, "minimum", "no number satisfies the bounds");
    if (!bounded) {
        // unbounded: any integer part (incl. "-0"), optional fraction, optional exponent
        int32_t ip = nfa.add_state(), frac_end = nfa.add_state();
        detail::emit_int_range(nfa, from, ip, -kIntCap, kIntCap);
        nfa.epsilon(nfa.literal(from, "-0"), ip);
        int32_t dot = nfa.add_state();
        nfa.range(ip, '.', '.', dot);
        int32_t cur = dot;
        for (int i = 0; i < 15; ++i) {
            int32_t next = nfa.add_state();
            nfa.range(cur, '0', '9', next);
            nfa.epsilon(next, frac_end);
            cur = next;
        }
        nfa.epsilon(ip, frac_end);
        nfa.epsilon(frac_end, to);
        int32_t e = nfa.add_state(), sign = nfa.add_state(), d1 = nfa.add_state(), d2 = nfa.add_state();
        nfa.range(frac_end, 'e', 'e', e);
        nfa.range(frac_end, 'E', 'E', e);
        nfa.range(e, '+', '+', sign);
        nfa.range(e, '-', '-', sign);
        nfa.epsilon(e, sign);
        nfa.range(sign, '0', '9', d1);
        nfa.range(d1, '0', '9', d2);
        nfa.epsilon(d1, to);
        nfa.epsilon(d2, to);
        return;
    }
    if (lo <= hi) detail::emit_int_range(nfa, from, to, lo, hi);
    // Fractions X.d (1..15 digits), non-negative ones as written, negative ones as '-' and the magnitude:
    // bounds on the value become bounds on the magnitude (negated and swapped for the negative branch).
    if (!high || high->value >= 0) {
        std::optional<MagBound> a, b;
        if (low && low->value > 0) a = mag_bound(*low, path);
        if (high) b = mag_bound(*high, path);
        emit_fraction_magnitudes(nfa, from, to, a, b);
    }
    if (!low || low->value < 0) {
        std::optional<MagBound> a, b;
        if (high && high->value < 0) a = mag_bound(*high, path);
        if (low) b = mag_bound(*low, path);
        emit_fraction_magnitudes(nfa, nfa.literal(from, "-"), to, a, b);
    }
}

}  // namespace qnext::constrain
