// Mutation fuzzing of the schema compiler: 3,000 schemas derived from the real test corpus by random structural
// mutations (subtrees replaced by random JSON, keywords injected with hostile values, deep wrapping, huge
// numbers and strings, random regex text). Every one must end in a grammar or a clean exception, in under a
// second, never a crash or a hang. Deterministic (fixed seed). (An ASan build runs the same test for memory
// errors: cmake -DCMAKE_CXX_FLAGS=-fsanitize=address.)
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>

#include "agent/constrain/constrain.h"
#include "tests/constrain/test_util.h"

namespace qnext::constrain {
namespace {

using json = nlohmann::ordered_json;

class Mutator {
public:
    explicit Mutator(uint64_t seed) : rng_(seed) {}

    json random_value(int depth = 0) {
        switch (pick(depth > 2 ? 5 : 8)) {
            case 0: return nullptr;
            case 1: return pick(2) == 0;
            case 2: return static_cast<int64_t>(rng_()) >> pick(60);
            case 3: return std::ldexp(static_cast<double>(rng_() % 1000) - 500, static_cast<int>(pick(80)) - 40);
            case 4: return random_string();
            case 5: {
                json a = json::array();
                for (int i = 0, n = pick(4); i < n; ++i) a.push_back(random_value(depth + 1));
                return a;
            }
            default: {
                json o = json::object();
                for (int i = 0, n = pick(4); i < n; ++i) o[keyword()] = random_value(depth + 1);
                return o;
            }
        }
    }

    void mutate(json& j, int depth = 0) {
        if (depth > 40) return;
        const int r = pick(10);
        if (r == 0) {
            j = random_value();
            return;
        }
        if (r == 1 && j.is_object()) {
            j[keyword()] = random_value();
            return;
        }
        if (r == 2) {   // wrap in a combinator / container many times
            for (int i = 0, n = pick(30); i < n; ++i)
                j = pick(2) ? json{{"anyOf", json::array({j})}} : json{{"type", "array"}, {"items", j}};
            return;
        }
        if (r == 3 && j.is_object()) {
            j["pattern"] = random_regex();
            j["type"] = "string";
            return;
        }
        if (r == 4 && j.is_object()) {
            j[pick(2) ? "maxLength" : "maxItems"] = static_cast<int64_t>(rng_() % 100000);
            return;
        }
        if (j.is_object() && !j.empty()) {
            auto it = j.begin();
            std::advance(it, pick(static_cast<int>(j.size())));
            mutate(it.value(), depth + 1);
        } else if (j.is_array() && !j.empty()) {
            mutate(j[static_cast<size_t>(pick(static_cast<int>(j.size())))], depth + 1);
        }
    }

private:
    int pick(int n) { return n <= 0 ? 0 : static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
    std::string keyword() {
        static const char* kw[] = {"type", "properties", "required", "items", "anyOf", "oneOf", "allOf", "enum", "const",
                                   "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "minLength",
                                   "maxLength", "minItems", "maxItems", "prefixItems", "additionalProperties", "$ref",
                                   "$defs", "minProperties", "maxProperties", "nullable", "x"};
        return kw[pick(sizeof kw / sizeof kw[0])];
    }
    std::string random_string() {
        std::string s;
        const int n = pick(8) == 0 ? 20000 : pick(12);
        for (int i = 0; i < n; ++i) s += static_cast<char>(pick(8) == 0 ? 0x80 + pick(64) : 0x20 + pick(95));
        return s;
    }
    std::string random_regex() {
        static const char* atoms[] = {"a", "[a-z]", "\\d", ".", "(", ")", "|", "*", "+", "?", "{2,5}", "{100}", "[^x]",
                                      "\\", "^", "$", "(?:", "\\w", "[", "]", "{", "}", "é", "\\u00e9"};
        std::string s;
        for (int i = 0, n = pick(30); i < n; ++i) s += atoms[pick(sizeof atoms / sizeof atoms[0])];
        return s;
    }
    std::mt19937_64 rng_;
};

TEST(SchemaFuzz, MutatedCorpusCompilesOrFailsCleanlyAndQuickly) {
    std::ifstream f(std::string(QNEXT_SOURCE_DIR) + "/tests/data/constrain/schemas.json");
    const json corpus = json::parse(f);
    ASSERT_GE(corpus.size(), 50u);
    auto vocab = testing::small_vocab();
    Mutator mut(20261206);
    int compiled = 0, refused = 0;
    double worst = 0;
    for (int i = 0; i < 3000; ++i) {
        json schema = corpus[static_cast<size_t>(i) % corpus.size()]["schema"];
        for (int k = 0, n = 1 + i % 4; k < n; ++k) mut.mutate(schema);
        if (std::getenv("QNEXT_FUZZ_VERBOSE")) std::fprintf(stderr, "schema %d: %s\n", i, schema.dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 2000).c_str());
        const auto t0 = std::chrono::steady_clock::now();
        try {
            Grammar g = Grammar::from_json_schema(schema, vocab);
            Matcher m(g);
            std::vector<uint32_t> mask(m.mask_words());
            m.fill_next_token_bitmask(mask.data());
            ++compiled;
        } catch (const std::exception&) {
            ++refused;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        worst = std::max(worst, s);
        EXPECT_LT(s, 1.0) << "schema " << i << ": " << schema.dump().substr(0, 400);
    }
    EXPECT_GT(compiled, 300);
    EXPECT_GT(refused, 300);
    std::printf("3000 mutated schemas: %d compiled, %d refused cleanly, slowest %.3f s\n", compiled, refused, worst);
}

}  // namespace
}  // namespace qnext::constrain
