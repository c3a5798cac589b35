// UTF-8 validation with Python/Rust "replace" semantics, NFC, and the streaming decoder.
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <utf8proc.h>

#include "model/tokenizer.h"
#include "model/tokenizer_impl.h"

namespace qnext {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";   // U+FFFD

// Allowed range of the second byte after lead byte `b0` (Unicode Table 3-7), and the sequence length.
// Returns 0 for a byte that cannot start a sequence.
int sequence_length(unsigned char b0, unsigned char& lo, unsigned char& hi) {
    lo = 0x80;
    hi = 0xBF;
    if (b0 < 0x80) return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) return 2;
    if (b0 == 0xE0) { lo = 0xA0; return 3; }
    if (b0 >= 0xE1 && b0 <= 0xEC) return 3;
    if (b0 == 0xED) { hi = 0x9F; return 3; }
    if (b0 >= 0xEE && b0 <= 0xEF) return 3;
    if (b0 == 0xF0) { lo = 0x90; return 4; }
    if (b0 >= 0xF1 && b0 <= 0xF3) return 4;
    if (b0 == 0xF4) { hi = 0x8F; return 4; }
    return 0;
}

// Walks `s`: calls emit(valid_bytes) for runs of valid UTF-8 and emit(kReplacement) once per
// maximal invalid subpart. Stops before a trailing incomplete (but so far valid) sequence and
// returns where it starts (s.size() if there is none).
template <class Emit>
size_t scan(std::string_view s, Emit&& emit) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t run = 0;   // start of the current valid run
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { ++i; continue; }
        unsigned char lo = 0, hi = 0;
        const int len = sequence_length(p[i], lo, hi);
        size_t j = i + 1;
        bool bad = len == 0;
        for (int k = 1; !bad && k < len; ++k, ++j) {
            if (j >= n) {   // incomplete at the end: undecided
                emit(s.substr(run, i - run));
                return i;
            }
            const unsigned char b = p[j];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) bad = true;
            if (bad) break;
        }
        if (!bad) { i = j; continue; }
        emit(s.substr(run, i - run));
        emit(kReplacement);
        i = std::max(j, i + 1);
        run = i;
    }
    emit(s.substr(run, n - run));
    return n;
}

}  // namespace

std::string utf8_sanitize(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    const size_t undecided = scan(bytes, [&](std::string_view part) { out += part; });
    if (undecided < bytes.size()) out += kReplacement;   // an unfinished sequence at the very end
    return out;
}

bool utf8_valid(std::string_view bytes) {
    bool ok = true;
    const size_t decided = scan(bytes, [&](std::string_view part) { ok = ok && part.data() != kReplacement.data(); });
    return ok && decided == bytes.size();
}

size_t utf8_decidable_prefix(std::string_view bytes) {
    return scan(bytes, [](std::string_view) {});
}

std::string nfc(std::string_view utf8) {
    utf8proc_uint8_t* mapped = nullptr;
    const auto len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                                  static_cast<utf8proc_ssize_t>(utf8.size()), &mapped,
                                  static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (len < 0) throw std::runtime_error(std::string("NFC normalization failed: ") + utf8proc_errmsg(len));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> hold(mapped, &std::free);
    return std::string(reinterpret_cast<const char*>(mapped), static_cast<size_t>(len));
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) { return push(std::span<const int32_t>(&id, 1)); }

std::string StreamDecoder::push(std::span<const int32_t> ids) {
    const auto& impl = tok_.impl();
    for (const int32_t id : ids) impl.append_decoded(id, skip_special_, pending_);
    std::string out;
    const size_t decided = scan(pending_, [&](std::string_view part) { out += part; });
    pending_.erase(0, decided);
    return out;
}

std::string StreamDecoder::finish() {
    std::string out = utf8_sanitize(pending_);
    pending_.clear();
    return out;
}

}  // namespace qnext
