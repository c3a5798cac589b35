// Golden tests: the C++ tokenizer against HF tokenizers 0.23.3 (tests/reference/make_text_golden.py).
#include <gtest/gtest.h>

#include "model/tokenizer.h"
#include "model/tokenizer_pretokenize.h"
#include "tests/text/text_test_util.h"

namespace qnext::test {
namespace {

std::string show(const std::string& s) { return nlohmann::json(utf8_sanitize(s)).dump(); }

TEST(TokenizerGolden, EncodeMatchesHfOnWholeCorpus) {
    const auto& tok = qwen3();
    const auto rows = read_jsonl("tokenizer_cases.jsonl");
    ASSERT_GE(rows.size(), 3000u);
    size_t mismatches = 0, invalid_utf8 = 0, no_special = 0;
    for (const auto& r : rows) {
        const std::string text = r.contains("hex") ? from_hex(r["hex"].get<std::string>()) : r["text"].get<std::string>();
        invalid_utf8 += r.contains("hex");
        const auto want = r["ids"].get<std::vector<int32_t>>();
        const auto got = tok.encode(text);
        if (got != want && ++mismatches <= 10)
            ADD_FAILURE() << "encode " << show(text) << "\n  want " << nlohmann::json(want).dump() << "\n  got  "
                          << nlohmann::json(got).dump();
        if (r.contains("ids_no_special")) {
            ++no_special;
            const auto want_plain = r["ids_no_special"].get<std::vector<int32_t>>();
            const auto got_plain = tok.encode(text, /*allow_special=*/false);
            if (got_plain != want_plain && ++mismatches <= 10)
                ADD_FAILURE() << "encode(allow_special=false) " << show(text) << "\n  want "
                              << nlohmann::json(want_plain).dump() << "\n  got  " << nlohmann::json(got_plain).dump();
        }
    }
    EXPECT_EQ(mismatches, 0u) << "of " << rows.size() << " strings";
    EXPECT_GE(invalid_utf8, 100u);
    EXPECT_GE(no_special, 50u);
}

TEST(TokenizerGolden, DecodeOfEncodeIsNfc) {
    const auto& tok = qwen3();
    size_t checked = 0, changed_by_nfc = 0;
    for (const auto& r : read_jsonl("tokenizer_cases.jsonl")) {
        if (r.contains("hex")) continue;
        const auto& text = r["text"].get_ref<const std::string&>();
        const std::string want = r.contains("nfc") ? r["nfc"].get<std::string>() : text;
        changed_by_nfc += r.contains("nfc");
        EXPECT_EQ(tok.decode(tok.encode(text)), want) << show(text);
        EXPECT_EQ(nfc(text), want) << show(text);
        ++checked;
    }
    EXPECT_GE(checked, 3000u);
    EXPECT_GE(changed_by_nfc, 20u);
}

TEST(TokenizerGolden, DecodeMatchesHf) {
    const auto& tok = qwen3();
    const auto rows = read_jsonl("decode_cases.jsonl");
    ASSERT_GE(rows.size(), 500u);
    size_t with_replacement = 0;
    for (const auto& r : rows) {
        const auto ids = r["ids"].get<std::vector<int32_t>>();
        const auto& want = r["text"].get_ref<const std::string&>();
        with_replacement += want.find("\xEF\xBF\xBD") != std::string::npos;
        EXPECT_EQ(tok.decode(ids), want) << nlohmann::json(ids).dump();
        EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), r["text_skip"].get<std::string>()) << nlohmann::json(ids).dump();
    }
    EXPECT_GE(with_replacement, 100u);   // the corpus exercises invalid UTF-8
}

// Feeding ids one at a time must emit only complete UTF-8 and add up to the one-shot decode.
TEST(TokenizerGolden, StreamDecoderAddsUpToHfDecode) {
    const auto& tok = qwen3();
    for (const auto& r : read_jsonl("decode_cases.jsonl")) {
        const auto ids = r["ids"].get<std::vector<int32_t>>();
        for (const bool skip : {false, true}) {
            StreamDecoder dec(tok, skip);
            std::string all;
            for (const int32_t id : ids) {
                const std::string piece = dec.push(id);
                EXPECT_TRUE(utf8_valid(piece));
                all += piece;
                EXPECT_LE(dec.pending_bytes(), 3u);
            }
            all += dec.finish();
            EXPECT_EQ(all, r[skip ? "text_skip" : "text"].get<std::string>()) << nlohmann::json(ids).dump();
        }
    }
}

// The split scanner's \p{L}, \p{N} and \s agree with the reference regex engine on every code point.
TEST(TokenizerGolden, CharacterClassesMatchReferenceEngine) {
    std::ifstream in(text_data() / "char_classes.json");
    const auto j = nlohmann::json::parse(in);
    std::vector<char> want(0x110000, 'O');
    for (const auto& [name, cls] : {std::pair{"L", 'L'}, std::pair{"N", 'N'}, std::pair{"S", 'S'}})
        for (const auto& range : j.at(name))
            for (uint32_t c = range[0].get<uint32_t>(); c <= range[1].get<uint32_t>(); ++c) want[c] = cls;
    size_t bad = 0;
    for (uint32_t c = 0; c < 0x110000; ++c) {
        if (c >= 0xD800 && c < 0xE000) continue;
        const auto k = text::classify(c);
        const char got = k == text::CharClass::Letter ? 'L' : k == text::CharClass::Number ? 'N'
                         : (k == text::CharClass::Space || k == text::CharClass::Newline) ? 'S' : 'O';
        if (got != want[c] && ++bad <= 10) ADD_FAILURE() << "U+" << std::hex << c << " want " << want[c] << " got " << got;
    }
    EXPECT_EQ(bad, 0u);
}

}  // namespace
}  // namespace qnext::test
