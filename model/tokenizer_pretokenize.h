// Pre-tokenization for the Qwen2/Qwen3 byte-level BPE tokenizers: the Split pre-tokenizer with
// the regex below (behavior "Isolated"), implemented as a scanner over Unicode general categories
// (utf8proc) so that `\s+(?!\S)` and the leftmost-first alternation behave exactly as Oniguruma
// does in HF tokenizers:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// \p{L} = Lu|Ll|Lt|Lm|Lo, \p{N} = Nd|Nl|No, \s = Unicode White_Space (Zs|Zl|Zp + \t\n\v\f\r, U+0085);
// these sets were checked code point by code point against the reference (tests/text).
// Qwen3.5 / Qwen3.6 (248k vocabulary) use the same pattern with combining marks (\p{M} = Mn|Mc|Me) joined to
// letters instead of to punctuation:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
#pragma once
#include <string_view>
#include <vector>

namespace qnext::text {

// The one Split pattern this scanner implements (as written in Qwen's tokenizer.json).
inline constexpr std::string_view kQwenSplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

inline constexpr std::string_view kQwen35SplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum class SplitVariant { Qwen2, Qwen35 };

// Character classes used by the scanner (Mark: Mn|Mc|Me, "Other" in the Qwen2 pattern).
enum class CharClass : unsigned char { Letter, Number, Newline /* \r \n */, Space /* other \s */, Other, Mark };
CharClass classify(char32_t cp);

// Splits valid UTF-8 `text` into consecutive pieces (views into `text`), appended to `out`.
// Every byte of `text` belongs to exactly one piece.
void split_qwen(std::string_view text, std::vector<std::string_view>& out, SplitVariant v = SplitVariant::Qwen2);

}  // namespace qnext::text
