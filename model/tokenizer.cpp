// Tokenizer encode/decode and accessors (loading is in tokenizer_load.cpp).
#include "model/tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include "model/tokenizer_impl.h"
#include "model/tokenizer_pretokenize.h"

namespace qnext {
namespace {

// Decodes the (valid UTF-8) character starting at byte `pos`; sets its byte length.
char32_t char_at(std::string_view s, size_t pos, size_t& len) {
    const auto c = static_cast<unsigned char>(s[pos]);
    len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (len == 1 || pos + len > s.size()) {
        len = 1;
        return c;
    }
    char32_t cp = c & (0x3F >> (len - 1));
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
    return cp;
}

// Rust char::is_whitespace == Unicode White_Space == our Newline|Space classes.
bool is_whitespace_at(std::string_view s, size_t pos, size_t& len) {
    const auto cls = text::classify(char_at(s, pos, len));
    return cls == text::CharClass::Newline || cls == text::CharClass::Space;
}

// Alphanumeric or '_' (the word characters of HF's single_word check).
bool is_word_char_at(std::string_view s, size_t pos) {
    size_t len = 0;
    const char32_t cp = char_at(s, pos, len);
    const auto cls = text::classify(cp);
    return cp == '_' || cls == text::CharClass::Letter || cls == text::CharClass::Number;
}

size_t utf8_char_start(std::string_view s, size_t pos) {   // start of the character ending before pos
    size_t i = pos - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return i;
}

}  // namespace

void AddedMatcher::build(std::vector<const AddedToken*> tokens) {
    tokens_ = std::move(tokens);
    std::stable_sort(tokens_.begin(), tokens_.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
    for (auto& v : by_first_byte_) v.clear();
    for (const AddedToken* t : tokens_)
        if (!t->content.empty()) by_first_byte_[static_cast<unsigned char>(t->content[0])].push_back(t);
}

const AddedToken* AddedMatcher::find(std::string_view text, size_t from, size_t& begin, size_t& end) const {
    if (tokens_.empty()) return nullptr;
    for (size_t i = from; i < text.size(); ++i) {
        const auto& cands = by_first_byte_[static_cast<unsigned char>(text[i])];
        for (const AddedToken* t : cands) {   // longest first => leftmost-longest
            if (text.compare(i, t->content.size(), t->content) == 0) {
                begin = i;
                end = i + t->content.size();
                return t;
            }
        }
    }
    return nullptr;
}

void Tokenizer::Impl::check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= kind.size())
        throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(kind.size()) + ")");
}

void Tokenizer::Impl::append_decoded(int32_t id, bool skip_special, std::string& out) const {
    check_id(id);
    const auto k = kind[static_cast<size_t>(id)];
    if (k == Special && skip_special) return;
    if (k == Added || k == Special) {
        out += added_decoded.at(id);
        return;
    }
    out += bytes[static_cast<size_t>(id)];
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    thread_local std::vector<std::string_view> pieces;
    pieces.clear();
    text::split_qwen(text, pieces, split);
    for (const auto piece : pieces) bpe.encode_word(piece, out);
}

// HF AddedVocabulary::extract_and_normalize: stage one splits the raw text on normalized=false
// added tokens; each remaining piece is normalized and split on normalized=true tokens (stage two);
// what remains goes through pre-tokenization and BPE.
// With `plain` spans (stage one only), a match that overlaps a span is skipped as if it were not an
// added token, lstrip/rstrip never reach into a span, and pieces that overlap a span are not searched
// for normalized=true tokens (their offsets move under NFC).
void Tokenizer::Impl::encode_segments(std::string_view text, const AddedMatcher& matcher, bool allow_special,
                                      bool stage_one, std::vector<int32_t>& out,
                                      std::span<const TextSpan> plain) const {
    // The first span that ends after `at`.
    auto span_after = [&](size_t at) {
        return std::upper_bound(plain.begin(), plain.end(), at,
                                [](size_t v, const TextSpan& sp) { return v < sp.end; });
    };
    auto overlaps_plain = [&](size_t b, size_t e) {
        const auto it = span_after(b);
        return it != plain.end() && it->begin < e;
    };
    auto rest = [&](std::string_view piece) {
        if (piece.empty()) return;
        if (!stage_one) {
            encode_plain(piece, out);
            return;
        }
        const size_t off = static_cast<size_t>(piece.data() - text.data());
        const bool use_normalized = !normalized_matcher.empty() && !overlaps_plain(off, off + piece.size());
        if (nfc) {
            // Code points below U+0300 are NFC-stable and cannot compose with each other.
            const bool trivial = std::all_of(piece.begin(), piece.end(), [](char c) {
                return static_cast<unsigned char>(c) < 0xCC;   // lead bytes < 0xCC encode < U+0300
            });
            if (!trivial) {
                const std::string normalized = qnext::nfc(piece);
                if (!use_normalized) encode_plain(normalized, out);
                else encode_segments(normalized, normalized_matcher, allow_special, false, out);
                return;
            }
        }
        if (!use_normalized) encode_plain(piece, out);
        else encode_segments(piece, normalized_matcher, allow_special, false, out);
    };
    size_t start = 0;   // end of the previous match
    size_t pos = 0;     // where to search next
    size_t b = 0, e = 0;
    while (const AddedToken* t = matcher.find(text, pos, b, e)) {
        pos = e;
        if (t->special && !allow_special) continue;   // HF encode_special_tokens: skip the match
        if (overlaps_plain(b, e)) {   // request text spelling a token: plain text; markup may start inside
            pos = b + 1;
            continue;
        }
        if (t->single_word) {
            const bool start_ok = b == 0 || !is_word_char_at(text, utf8_char_start(text, b));
            const bool stop_ok = e == text.size() || !is_word_char_at(text, e);
            if (!(start_ok && stop_ok)) continue;
        }
        if (t->lstrip) {
            const auto before = span_after(b);   // spans end at or before b from here back
            const size_t floor = std::max(start, before == plain.begin() ? size_t{0} : std::prev(before)->end);
            while (b > floor) {
                const size_t cb = utf8_char_start(text, b);
                size_t len = 0;
                if (!is_whitespace_at(text, cb, len)) break;
                b = cb;
            }
        }
        if (t->rstrip) {
            size_t len = 0;
            const auto next = span_after(e);
            const size_t ceil = next == plain.end() ? text.size() : std::max(e, next->begin);
            while (e < ceil && is_whitespace_at(text, e, len)) e += len;
            pos = e;
        }
        rest(text.substr(start, b - start));
        out.push_back(t->id);
        start = e;
    }
    rest(text.substr(start));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    std::string sanitized;
    if (!utf8_valid(text)) {
        sanitized = utf8_sanitize(text);
        text = sanitized;
    }
    impl_->encode_segments(text, impl_->raw_matcher, allow_special, true, out);
    return out;
}

std::vector<int32_t> Tokenizer::encode_with_plain_spans(std::string_view text, std::span<const TextSpan> plain) const {
    size_t prev = 0;
    for (const TextSpan& sp : plain) {
        if (sp.begin < prev || sp.end < sp.begin || sp.end > text.size())
            throw std::invalid_argument("Tokenizer::encode_with_plain_spans: spans must be sorted, disjoint ranges "
                                        "inside the " + std::to_string(text.size()) + "-byte text (got [" +
                                        std::to_string(sp.begin) + ", " + std::to_string(sp.end) + "))");
        prev = sp.end;
    }
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (utf8_valid(text)) {
        impl_->encode_segments(text, impl_->raw_matcher, true, true, out, plain);
        return out;
    }
    // Sanitize piece by piece so the spans keep covering what they covered.
    std::string sanitized;
    std::vector<TextSpan> moved;
    size_t at = 0;
    for (const TextSpan& sp : plain) {
        sanitized += utf8_sanitize(text.substr(at, sp.begin - at));
        const size_t b = sanitized.size();
        sanitized += utf8_sanitize(text.substr(sp.begin, sp.end - sp.begin));
        moved.push_back({b, sanitized.size()});
        at = sp.end;
    }
    sanitized += utf8_sanitize(text.substr(at));
    impl_->encode_segments(sanitized, impl_->raw_matcher, true, true, out, moved);
    return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    std::string raw;
    for (const int32_t id : ids) impl_->append_decoded(id, skip_special, raw);
    return utf8_sanitize(raw);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->kind.size()); }

const std::string& Tokenizer::token_bytes(int32_t id) const {
    impl_->check_id(id);
    return impl_->bytes[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
    for (const auto& t : impl_->added)
        if (t.content == text) return t.id;
    if (const int32_t id = impl_->vocab.find(text); id >= 0) return id;
    return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < impl_->kind.size() && impl_->kind[static_cast<size_t>(id)] == Impl::Special;
}

bool Tokenizer::is_added(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= impl_->kind.size()) return false;
    const auto k = impl_->kind[static_cast<size_t>(id)];
    return k == Impl::Added || k == Impl::Special;
}

std::vector<int32_t> Tokenizer::added_token_ids() const {
    std::vector<int32_t> ids;
    for (const auto& t : impl_->added) ids.push_back(t.id);
    return ids;
}

const std::vector<int32_t>& Tokenizer::eos_ids() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
const std::filesystem::path& Tokenizer::directory() const { return impl_->dir; }

}  // namespace qnext
