// Streaming scanner for tokenizer.json (see tokenizer_json.h for why it exists).
#include "model/tokenizer_json.h"
#include "common/json_limits.h"

#include <charconv>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace qnext::text {
namespace {

class Cursor {
public:
    Cursor(std::string_view text, std::string file) : s_(text), file_(std::move(file)) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error(file_ + ": malformed JSON at byte " + std::to_string(pos_) + ": " + what);
    }
    void ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
            ++pos_;
    }
    char peek() {
        ws();
        if (pos_ >= s_.size()) fail("unexpected end of file");
        return s_[pos_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    // After a value inside an object/array: true if another element follows (consumes ',').
    bool more(char close) {
        const char c = peek();
        ++pos_;
        if (c == ',') return true;
        if (c == close) return false;
        fail(std::string("expected ',' or '") + close + "'");
    }
    // Opens an object/array; returns false (and consumes the close) when it is empty.
    bool open(char open_c, char close_c) {
        expect(open_c);
        if (peek() == close_c) { ++pos_; return false; }
        return true;
    }

    void string(std::string& out) {
        expect('"');
        out.clear();
        for (;;) {
            const size_t start = pos_;
            while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\') ++pos_;
            out.append(s_.data() + start, pos_ - start);
            if (pos_ >= s_.size()) fail("unterminated string");
            if (s_[pos_++] == '"') return;
            if (pos_ >= s_.size()) fail("unterminated escape");
            const char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': append_utf8(out, unicode_escape()); break;
                default: fail("bad escape");
            }
        }
    }

    int64_t integer() {
        ws();
        int64_t v = 0;
        auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + s_.size(), v);
        if (ec != std::errc()) fail("expected an integer");
        pos_ = static_cast<size_t>(p - s_.data());
        return v;
    }

    // Skips any value and returns its raw text.
    std::string_view raw_value() {
        const size_t start = (ws(), pos_);
        std::string tmp;
        const char c = peek();
        if (c == '"') {
            string(tmp);
        } else if (c == '{' || c == '[') {
            int depth = 0;
            while (pos_ < s_.size()) {
                const char d = s_[pos_];
                if (d == '"') { string(tmp); continue; }
                ++pos_;
                if (d == '{' || d == '[') ++depth;
                if ((d == '}' || d == ']') && --depth == 0) break;
            }
            if (depth != 0) fail("unterminated container");
        } else {
            while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '}' && s_[pos_] != ']' && s_[pos_] != ' ' &&
                   s_[pos_] != '\n' && s_[pos_] != '\r' && s_[pos_] != '\t')
                ++pos_;
        }
        return s_.substr(start, pos_ - start);
    }
    nlohmann::json value() {
        const auto raw = raw_value();
        try {
            return parse_json_limited(raw);
        } catch (const std::exception& e) {
            fail(e.what());
        }
    }
    void end() {
        ws();
        if (pos_ != s_.size()) fail("trailing characters");
    }

private:
    uint32_t hex4() {
        if (pos_ + 4 > s_.size()) fail("short \\u escape");
        uint32_t v = 0;
        auto [p, ec] = std::from_chars(s_.data() + pos_, s_.data() + pos_ + 4, v, 16);
        if (ec != std::errc() || p != s_.data() + pos_ + 4) fail("bad \\u escape");
        pos_ += 4;
        return v;
    }
    uint32_t unicode_escape() {
        uint32_t cp = hex4();
        if (cp >= 0xD800 && cp < 0xDC00) {   // high surrogate: a low one must follow
            if (s_.substr(pos_, 2) != "\\u") fail("lone surrogate");
            pos_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone surrogate");
        }
        return cp;
    }
    static void append_utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string_view s_;
    std::string file_;
    size_t pos_ = 0;
};

void read_model(Cursor& c, TokenizerJson& out) {
    out.model = nlohmann::json::object();
    if (!c.open('{', '}')) return;
    out.vocab.reserve(1 << 18);
    out.merges.reserve(1 << 18);
    std::string key, a, b;
    do {
        c.string(key);
        c.expect(':');
        if (key == "vocab") {
            if (!c.open('{', '}')) continue;
            do {
                c.string(a);
                c.expect(':');
                out.vocab.emplace_back(a, c.integer());
            } while (c.more('}'));
        } else if (key == "merges") {
            if (!c.open('[', ']')) continue;
            do {
                if (c.peek() == '"') {   // legacy form "a b"
                    c.string(a);
                    const auto sp = a.find(' ');
                    if (sp == std::string::npos || a.find(' ', sp + 1) != std::string::npos)
                        c.fail("merge \"" + a + "\" is not two space-separated tokens");
                    out.merges.emplace_back(a.substr(0, sp), a.substr(sp + 1));
                } else {                 // current form ["a", "b"]
                    c.expect('[');
                    c.string(a);
                    c.expect(',');
                    c.string(b);
                    c.expect(']');
                    out.merges.emplace_back(a, b);
                }
            } while (c.more(']'));
        } else {
            out.model[key] = c.value();
        }
    } while (c.more('}'));
}

}  // namespace

TokenizerJson read_tokenizer_json(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open tokenizer file " + file.string());
    std::string text;
    in.seekg(0, std::ios::end);
    text.resize(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (!in) throw std::runtime_error("cannot read tokenizer file " + file.string());

    TokenizerJson out;
    out.added_tokens = nlohmann::json::array();
    Cursor c(text, file.string());
    bool have_model = false;
    if (c.open('{', '}')) {
        std::string key;
        do {
            c.string(key);
            c.expect(':');
            if (key == "model") {
                read_model(c, out);
                have_model = true;
            } else if (key == "added_tokens") {
                out.added_tokens = c.value();
            } else if (key == "normalizer") {
                out.normalizer = c.value();
            } else if (key == "pre_tokenizer") {
                out.pre_tokenizer = c.value();
            } else if (key == "decoder") {
                out.decoder = c.value();
            } else if (key == "post_processor") {
                out.post_processor = c.value();
            } else {
                c.raw_value();   // version, truncation, padding: not used for encode
            }
        } while (c.more('}'));
    }
    c.end();
    if (!have_model) throw std::runtime_error(file.string() + ": no \"model\" section");
    return out;
}

}  // namespace qnext::text
