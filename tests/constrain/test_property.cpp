// Property tests on the real Qwen3 vocabulary (151,669 tokens): for every schema of
// tests/data/constrain/schemas.json, 200 random completions under the mask (uniform over allowed
// tokens, closing bias after 48 tokens): the mask is never empty before completion, every sample
// completes within 1024 tokens, parses as JSON and validates against the schema with an independent
// validator. Samples can be written for the Python `jsonschema` cross-check
// (QNEXT_CONSTRAIN_SAMPLES_OUT=file.jsonl; tests/reference/constrain_validate.py).
// Also: tool-call sampling in every mode, parsed by the streaming parser.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "agent/constrain/constrain.h"
#include "agent/constrain/engine.h"
#include "agent/constrain/json_schema.h"
#include "agent/constrain/random_completion.h"
#include "agent/constrain/tool_grammar.h"
#include "model/tokenizer.h"
#include "tests/constrain/schema_validator.h"

namespace qnext::constrain {
namespace {

using json = nlohmann::ordered_json;
constexpr int kSamples = 200;

VocabularyPtr qwen_vocab() {
    static VocabularyPtr v =
        Vocabulary::from_tokenizer(Tokenizer::load(std::string(QNEXT_SOURCE_DIR) + "/tests/data/text"));
    return v;
}

std::string text_of(const Vocabulary& v, const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids)
        if (!v.is_stop(id)) s += v.token_bytes(id);
    return s;
}

json load(const std::string& rel) {
    std::ifstream f(std::string(QNEXT_SOURCE_DIR) + "/" + rel);
    return json::parse(f);
}

class SchemaProperty : public ::testing::TestWithParam<int> {};

TEST_P(SchemaProperty, SamplesParseAndValidate) {
    static const json schemas = load("tests/data/constrain/schemas.json");
    const int idx = GetParam();
    ASSERT_LT(idx, static_cast<int>(schemas.size()));
    const json& entry = schemas[static_cast<size_t>(idx)];
    const json& schema = entry["schema"];
    auto vocab = qwen_vocab();
    Grammar g = Grammar::from_json_schema(schema, vocab);
    RandomCompleter sampler(vocab);
    std::ofstream out;
    if (const char* path = std::getenv("QNEXT_CONSTRAIN_SAMPLES_OUT")) out.open(path, std::ios::app);
    int failures = 0;
    for (int i = 0; i < kSamples && failures < 3; ++i) {
        Matcher m(g);
        RandomCompletion c = sampler.run(m, 1000003ull * static_cast<uint64_t>(idx) + static_cast<uint64_t>(i), 1024, 48);
        const std::string text = text_of(*vocab, c.tokens);
        EXPECT_FALSE(c.mask_ever_empty) << entry["name"] << ": " << text;
        EXPECT_TRUE(c.complete) << entry["name"] << " did not complete in 1024 tokens: " << text.substr(0, 300);
        json parsed;
        try {
            parsed = json::parse(text);
        } catch (const json::exception& e) {
            ADD_FAILURE() << entry["name"] << ": not JSON: " << text << " (" << e.what() << ")";
            ++failures;
            continue;
        }
        auto err = testing::validate(parsed, schema);
        EXPECT_FALSE(err) << entry["name"] << ": " << *err << " in " << text;
        if (err || !c.complete) ++failures;
        if (out) out << json{{"schema", entry["name"]}, {"text", text}}.dump() << "\n";
    }
}

constexpr int kSchemaCount = 66;
INSTANTIATE_TEST_SUITE_P(Schemas, SchemaProperty, ::testing::Range(0, kSchemaCount));

TEST(SchemaSet, AllSchemasCoveredAndPythonCrossCheckClean) {
    const json schemas = load("tests/data/constrain/schemas.json");
    EXPECT_EQ(schemas.size(), static_cast<size_t>(kSchemaCount));   // keep the parameter range in sync
    // committed result of tests/reference/constrain_validate.py over the samples of this test
    const json py = load("tests/data/constrain/python_validation.json");
    EXPECT_EQ(py["schemas"].get<int>(), kSchemaCount);
    EXPECT_GE(py["samples"].get<int>(), kSchemaCount * kSamples);
    EXPECT_EQ(py["valid"], py["samples"]);
}

// Tool calls on the real vocabulary, every mode: decode, stream-parse, check structure and arguments.
class ToolCallProperty : public ::testing::TestWithParam<ToolFormat> {};

// Both formats: hermes JSON (Qwen3 / Qwen3-Next) and Qwen3.5's XML (string parameters raw). The XML grammar
// refuses string parameters with pattern/format/length bounds; those tools are left out for it.
TEST_P(ToolCallProperty, EveryModeProducesValidCalls) {
    const ToolFormat format = GetParam();
    const bool xml = format == ToolFormat::Xml;
    json tools = load("tests/data/constrain/tools20.json");
    if (xml) {
        json kept = json::array();
        for (const auto& t : tools) {
            try {
                ToolCallOptions o;
                o.format = format;
                Grammar::from_tools(json::array({t}), o, qwen_vocab());
                kept.push_back(t);
            } catch (const SchemaError&) {
            }
        }
        ASSERT_GE(kept.size(), 10u);
        tools = kept;
    }
    auto vocab = qwen_vocab();
    RandomCompleter sampler(vocab);
    struct Mode {
        std::string choice;
        bool parallel, thinking;
    };
    for (const Mode& mode : {Mode{"auto", true, false}, Mode{"required", true, false}, Mode{"required", false, false},
                             Mode{"get_weather", true, false}, Mode{"none", true, false}, Mode{"required", true, true},
                             Mode{"auto", false, true}}) {
        ToolCallOptions o;
        o.choice = mode.choice;
        o.parallel_tool_calls = mode.parallel;
        o.thinking = mode.thinking;
        o.format = format;
        Grammar g = Grammar::from_tools(tools, o, vocab);
        for (int i = 0; i < 8; ++i) {
            Matcher m(g);
            RandomCompletion c = sampler.run(m, 77 + static_cast<uint64_t>(i), 1500, 64);
            ASSERT_FALSE(c.mask_ever_empty) << mode.choice << ": " << text_of(*vocab, c.tokens);
            ASSERT_TRUE(c.complete) << mode.choice;
            const std::string text = text_of(*vocab, c.tokens);
            if (mode.choice == "required" || mode.choice == "get_weather") {   // no text before the first call
                EXPECT_EQ(c.tokens.at(0) == *vocab->added_id("<tool_call>"), !mode.thinking);
            }
            ToolCallParser p(mode.thinking, xml, xml_string_parameters(parse_tools(tools)));
            auto ev = p.push(text);
            auto fin = p.finish(false);
            ev.insert(ev.end(), fin.begin(), fin.end());
            int calls = 0;
            for (const auto& e : ev) {
                ASSERT_NE(e.kind, ToolCallEvent::Kind::CallInvalid) << text;
                if (e.kind != ToolCallEvent::Kind::CallEnd) continue;
                ++calls;
                const json* params = nullptr;
                for (const auto& t : tools)
                    if (t["function"]["name"] == e.name) params = &t["function"]["parameters"];
                ASSERT_NE(params, nullptr) << e.name;
                auto err = testing::validate(e.arguments, *params);
                EXPECT_FALSE(err) << e.name << ": " << *err << " in " << e.text;
            }
            EXPECT_EQ(calls, p.num_calls());
            if (mode.choice == "none") {
                EXPECT_EQ(calls, 0);
            }
            if (mode.choice == "required" || mode.choice == "get_weather") {
                EXPECT_GE(calls, 1) << text;
            }
            if (!mode.parallel || mode.choice == "get_weather") {
                EXPECT_LE(calls, 1);
            }
            for (const auto& e : ev) {
                if (mode.choice == "get_weather" && e.kind == ToolCallEvent::Kind::CallStart) {
                    EXPECT_EQ(e.name, "get_weather");
                }
            }
        }
    }
}
INSTANTIATE_TEST_SUITE_P(Formats, ToolCallProperty, ::testing::Values(ToolFormat::Json, ToolFormat::Xml),
                         [](const ::testing::TestParamInfo<ToolFormat>& i) {
                             return i.param == ToolFormat::Json ? std::string("Json") : std::string("Xml");
                         });

}  // namespace
}  // namespace qnext::constrain

namespace qnext::constrain {
namespace {

// Length-bounded strings: the entries derived from the vocabulary-wide string table (engine.h) give the
// same masks as walking the trie at every position, along random paths through escapes, multi-byte UTF-8
// and the bounds themselves, on the real vocabulary.
TEST(CountedStrings, DerivedMasksEqualTrieWalks) {
    auto vocab = qwen_vocab();
    for (const char* schema : {R"({"type": "string", "maxLength": 12})", R"({"type": "string", "minLength": 3, "maxLength": 30})",
                               R"({"type": "string", "minLength": 5})",
                               R"({"type": "object", "properties": {"a": {"type": "string", "maxLength": 7}}, "required": ["a"]})"}) {
        RuleSet rules;
        JsonSchemaCompiler compiler(rules);
        const json doc = json::parse(schema);
        const int32_t root = compiler.compile(doc, doc, "");
        Engine derived(compile_rules(rules, root), vocab);
        Engine walked(compile_rules(rules, root), vocab, Engine::Options{false, false});
        std::vector<uint32_t> a(vocab->mask_words()), b(vocab->mask_words());
        std::mt19937_64 rng(7);
        for (int run = 0; run < 25; ++run) {
            int32_t ca = derived.initial(), cb = walked.initial();
            for (int step = 0; step < 40 && derived.has_continuation(ca); ++step) {
                derived.fill_mask(ca, a.data(), a.size());
                walked.fill_mask(cb, b.data(), b.size());
                ASSERT_EQ(a, b) << schema << " run " << run << " step " << step;
                std::vector<int32_t> allowed;
                for (size_t w = 0; w < a.size(); ++w)
                    for (uint32_t x = a[w]; x; x &= x - 1) {
                        const int32_t id = static_cast<int32_t>(w * 32 + static_cast<size_t>(__builtin_ctz(x)));
                        if (!vocab->is_added(id)) allowed.push_back(id);
                    }
                if (allowed.empty()) break;
                const int32_t tok = allowed[rng() % allowed.size()];
                ca = derived.advance_token(ca, tok);
                cb = walked.advance_token(cb, tok);
                ASSERT_NE(ca, Engine::kDead);
                ASSERT_NE(cb, Engine::kDead);
            }
        }
    }
}

}  // namespace
}  // namespace qnext::constrain
