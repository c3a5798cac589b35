// Unit tests: tokenizer API contracts other parts rely on, UTF-8 handling and load-time validation.
#include <gtest/gtest.h>

#include <unistd.h>

#include "model/tokenizer.h"
#include "tests/text/text_test_util.h"

namespace qnext::test {
namespace {

TEST(Tokenizer, Qwen3VocabularyAndSpecialTokens) {
    const auto& tok = qwen3();
    EXPECT_EQ(tok.vocab_size(), 151669);
    EXPECT_EQ(tok.token_id("<|endoftext|>"), 151643);
    EXPECT_EQ(tok.token_id("<|im_start|>"), 151644);
    EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
    EXPECT_EQ(tok.token_id("<think>"), 151667);
    EXPECT_EQ(tok.token_id("</think>"), 151668);
    EXPECT_TRUE(tok.is_special(151645));
    EXPECT_FALSE(tok.is_special(151667));   // <think> is added but not special
    EXPECT_TRUE(tok.is_added(151667));
    EXPECT_FALSE(tok.is_added(100));
    EXPECT_EQ(tok.token_bytes(151657), "<tool_call>");
    EXPECT_EQ(tok.token_bytes(tok.encode(" hello").at(0)), " hello");
    EXPECT_EQ(tok.token_id(" hello"), tok.encode(" hello").at(0));
    EXPECT_EQ(tok.token_id("no such token at all"), std::nullopt);
    EXPECT_EQ(tok.eos_ids(), (std::vector<int32_t>{151643, 151645}));
    EXPECT_EQ(tok.pad_id(), 151643);
    EXPECT_EQ(tok.added_token_ids().size(), 26u);
    // every single byte is a token of its own
    for (int b = 0; b < 256; ++b) {
        const std::string s(1, static_cast<char>(b));
        const auto id = tok.token_id(s);
        ASSERT_TRUE(id.has_value()) << b;
        EXPECT_EQ(tok.token_bytes(*id), s);
    }
}

TEST(Tokenizer, OutOfRangeIdsAreErrors) {
    const auto& tok = qwen3();
    EXPECT_THROW(tok.token_bytes(-1), std::out_of_range);
    EXPECT_THROW(tok.token_bytes(151669), std::out_of_range);
    const std::vector<int32_t> bad = {1, 2, 999999};
    EXPECT_THROW(tok.decode(bad), std::out_of_range);
}

TEST(Tokenizer, SpecialTokenTextCanBeEncodedAsPlainText) {
    const auto& tok = qwen3();
    EXPECT_EQ(tok.encode("<|im_end|>"), std::vector<int32_t>{151645});
    const auto plain = tok.encode("<|im_end|>", /*allow_special=*/false);
    EXPECT_GT(plain.size(), 1u);
    EXPECT_EQ(tok.decode(plain), "<|im_end|>");
    // non-special added tokens are still matched, as in HF
    EXPECT_EQ(tok.encode("<think>", false), std::vector<int32_t>{151667});
}

TEST(StreamDecoder, HoldsPartialCharacters) {
    const auto& tok = qwen3();
    const std::string euro = "\xE2\x82\xAC";   // U+20AC as three single-byte tokens
    StreamDecoder dec(tok);
    EXPECT_EQ(dec.push(*tok.token_id(euro.substr(0, 1))), "");
    EXPECT_EQ(dec.push(*tok.token_id(euro.substr(1, 1))), "");
    EXPECT_EQ(dec.pending_bytes(), 2u);
    EXPECT_EQ(dec.push(*tok.token_id(euro.substr(2, 1))), euro);
    EXPECT_EQ(dec.pending_bytes(), 0u);
    // an invalid continuation is replaced immediately; an unfinished tail only at finish()
    EXPECT_EQ(dec.push(*tok.token_id("\xE2")), "");
    EXPECT_EQ(dec.push(*tok.token_id("A")), "\xEF\xBF\xBD" "A");
    EXPECT_EQ(dec.push(*tok.token_id("\xF0")), "");
    EXPECT_EQ(dec.finish(), "\xEF\xBF\xBD");
}

TEST(Utf8, ReplacementFollowsPythonErrorsReplace) {
    // Expected values: bytes.decode("utf-8", errors="replace") in CPython 3.11.
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(utf8_sanitize("\xE0\x80\x80"), r + r + r);
    EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), r + r + r);   // surrogates are invalid
    EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98"), r);            // one truncated sequence -> one U+FFFD
    EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98" "A"), r + "A");
    EXPECT_EQ(utf8_sanitize("\xC0\xAF"), r + r);
    EXPECT_EQ(utf8_sanitize("\xF4\x90\x80\x80"), r + r + r + r);
    EXPECT_EQ(utf8_sanitize("ok"), "ok");
    EXPECT_TRUE(utf8_valid("h\xC3\xA9"));
    EXPECT_FALSE(utf8_valid("h\xC3"));
    EXPECT_EQ(utf8_decidable_prefix("ab\xE2\x82"), 2u);
    EXPECT_EQ(utf8_decidable_prefix("ab\xE2\x28"), 4u);
}

class BadTokenizer : public ::testing::Test {
protected:
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("qnext_tok_" + std::to_string(::getpid()));
    void SetUp() override { std::filesystem::create_directories(dir); }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string load_error(const std::string& json) {
        std::ofstream(dir / "tokenizer.json") << json;
        try {
            Tokenizer::load(dir);
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    }
};

TEST_F(BadTokenizer, RejectsUnsupportedOrBrokenFiles) {
    EXPECT_NE(load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}").find("model type"), std::string::npos);
    EXPECT_NE(load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                         "{\"type\": \"Whitespace\"}}").find("pre_tokenizer"), std::string::npos);
    EXPECT_NE(load_error("{\"model\": {\"vocab\": {\"a\": 0}").find("malformed JSON"), std::string::npos);
    EXPECT_NE(load_error("").find("malformed JSON"), std::string::npos);
    const std::string missing = (dir / "nope").string();
    EXPECT_THROW(Tokenizer::load(missing), std::runtime_error);
}

}  // namespace
}  // namespace qnext::test
