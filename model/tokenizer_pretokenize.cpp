// Qwen Split-regex scanner; see tokenizer_pretokenize.h for the pattern and the class definitions.
#include "model/tokenizer_pretokenize.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <cstdint>

#include <utf8proc.h>

namespace qnext::text {
namespace {

struct DeltaRange {
    char32_t first, last;
    CharClass cls;
};
// Code points the reference engine (a newer Unicode version than utf8proc's) classifies differently.
constexpr DeltaRange kDelta[] = {
#include "model/tokenizer_unicode_delta.inc"
};

CharClass classify_slow(char32_t cp) {
    const auto* d = std::upper_bound(std::begin(kDelta), std::end(kDelta), cp,
                                     [](char32_t c, const DeltaRange& r) { return c < r.first; });
    if (d != std::begin(kDelta) && cp <= (d - 1)->last) return (d - 1)->cls;
    switch (cp) {
        case '\r': case '\n': return CharClass::Newline;
        case '\t': case '\v': case '\f': case 0x85: return CharClass::Space;
        default: break;
    }
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
            return CharClass::Letter;
        case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
            return CharClass::Number;
        case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
            return CharClass::Space;
        case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
            return CharClass::Mark;
        default:
            return CharClass::Other;
    }
}

// Classes of the Basic Multilingual Plane, computed once (64 KiB).
const std::array<CharClass, 0x10000>& bmp_classes() {
    static const std::array<CharClass, 0x10000> table = [] {
        std::array<CharClass, 0x10000> t{};
        for (char32_t c = 0; c < 0x10000; ++c) t[c] = classify_slow(c);
        return t;
    }();
    return table;
}

struct Ch {
    uint32_t offset;   // byte offset of the character in the text
    char32_t cp;
    CharClass cls;
};

// Decodes valid UTF-8 into characters (+ a sentinel holding the end offset).
void decode(std::string_view text, std::vector<Ch>& chars) {
    chars.clear();
    const auto& bmp = bmp_classes();
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    size_t i = 0;
    while (i < text.size()) {
        if (p[i] < 0x80) {
            chars.push_back({static_cast<uint32_t>(i), p[i], bmp[p[i]]});
            ++i;
            continue;
        }
        utf8proc_int32_t cp = 0;
        auto len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
        if (len <= 0) {   // callers sanitize first; treat a stray byte as one "other" character
            cp = 0xFFFD;
            len = 1;
        }
        chars.push_back({static_cast<uint32_t>(i), static_cast<char32_t>(cp), classify(static_cast<char32_t>(cp))});
        i += static_cast<size_t>(len);
    }
    chars.push_back({static_cast<uint32_t>(text.size()), 0, CharClass::Other});
}

// Case-insensitive letter of the contraction alternative: ASCII folding plus U+017F LONG S,
// which Unicode case folding maps to 's' (Oniguruma matches it; verified against HF).
char fold(char32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return static_cast<char>(cp - 'A' + 'a');
    if (cp >= 'a' && cp <= 'z') return static_cast<char>(cp);
    if (cp == 0x17F) return 's';
    return 0;
}

bool is_ws(CharClass c) { return c == CharClass::Newline || c == CharClass::Space; }

}  // namespace

CharClass classify(char32_t cp) { return cp < 0x10000 ? bmp_classes()[cp] : classify_slow(cp); }

void split_qwen(std::string_view text, std::vector<std::string_view>& out, SplitVariant variant) {
    thread_local std::vector<Ch> chars;
    decode(text, chars);
    // Qwen2: a mark is punctuation ("other"); Qwen3.5: a mark belongs to the letter run (and is no "other").
    const bool marks = variant == SplitVariant::Qwen35;
    if (!marks)
        for (Ch& ch : chars)
            if (ch.cls == CharClass::Mark) ch.cls = CharClass::Other;
    auto wordy = [&](CharClass k) { return k == CharClass::Letter || k == CharClass::Mark; };
    const size_t n = chars.size() - 1;   // characters, excluding the sentinel
    auto emit = [&](size_t b, size_t e) {
        out.emplace_back(text.data() + chars[b].offset, chars[e].offset - chars[b].offset);
    };
    size_t i = 0;
    while (i < n) {
        const Ch& c = chars[i];
        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (c.cp == '\'' && i + 1 < n) {
            const char a = fold(chars[i + 1].cp);
            if (a == 's' || a == 't' || a == 'm' || a == 'd') { emit(i, i + 2); i += 2; continue; }
            if (i + 2 < n) {
                const char b = fold(chars[i + 2].cp);
                if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                    emit(i, i + 3); i += 3; continue;
                }
            }
        }
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+   (Qwen3.5: [^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+; a mark as the optional
        //    first character is then part of the run anyway)
        {
            size_t j = i;
            if (!wordy(c.cls) && c.cls != CharClass::Number && c.cls != CharClass::Newline && i + 1 < n &&
                wordy(chars[i + 1].cls))
                j = i + 1;
            if (wordy(chars[j].cls)) {
                while (j < n && wordy(chars[j].cls)) ++j;
                emit(i, j); i = j; continue;
            }
        }
        // 3. \p{N}
        if (c.cls == CharClass::Number) { emit(i, i + 1); ++i; continue; }
        // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        {
            size_t j = (c.cp == ' ' && i + 1 < n && chars[i + 1].cls == CharClass::Other) ? i + 1 : i;
            if (chars[j].cls == CharClass::Other && j < n) {
                while (j < n && chars[j].cls == CharClass::Other) ++j;
                while (j < n && chars[j].cls == CharClass::Newline) ++j;
                emit(i, j); i = j; continue;
            }
        }
        // c is whitespace here. Its maximal run is [i, e).
        size_t e = i;
        size_t last_newline = n;   // n = none
        while (e < n && is_ws(chars[e].cls)) {
            if (chars[e].cls == CharClass::Newline) last_newline = e;
            ++e;
        }
        // 5. \s*[\r\n]+ : backtracking ends the match right after the run's last newline.
        if (last_newline != n) { emit(i, last_newline + 1); i = last_newline + 1; continue; }
        // 6. \s+(?!\S) : the whole run at end of text, else all but its last character.
        if (e == n) { emit(i, e); i = e; continue; }
        if (e - i >= 2) { emit(i, e - 1); i = e - 1; continue; }
        // 7. \s+ : a single whitespace character before non-whitespace.
        emit(i, e);
        i = e;
    }
}

}  // namespace qnext::text
