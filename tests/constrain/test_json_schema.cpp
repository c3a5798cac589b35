// Unit tests per JSON-Schema feature (accept and reject cases) on a small byte vocabulary, plus
// the engine's self-consistency: the cached mask equals brute-force "try every token".
#include <gtest/gtest.h>

#include <chrono>

#include "agent/constrain/constrain.h"
#include "agent/constrain/rules.h"
#include "agent/constrain/tool_grammar.h"
#include "tests/constrain/test_util.h"

namespace qnext::constrain {
namespace {

using json = nlohmann::ordered_json;
using testing::accepts;
using testing::accepts_prefix;

Grammar G(const std::string& schema) { return Grammar::from_json_schema(json::parse(schema), testing::small_vocab()); }

// compile_rules merges equivalent DFA states: "ab" | "cb" | "cd" determinises to start, {after a},
// {after c}, {accept}; after a and after c differ ('d'), but in "ab" | "cb" they are one state.
TEST(Rules, EquivalentStatesAreMerged) {
    auto states_of = [](std::initializer_list<const char*> words) {
        RuleSet rs;
        const int32_t r = rs.declare("words");
        Nfa& nfa = rs.nfa(r);
        for (const char* w : words) nfa.epsilon(nfa.literal(nfa.start, w), nfa.final_state);
        return compile_rules(rs, r).rules[0].states.size();
    };
    EXPECT_EQ(states_of({"ab", "cb"}), 3u);
    EXPECT_EQ(states_of({"ab", "cb", "cd"}), 4u);
    EXPECT_EQ(states_of({"xab", "yab", "zab"}), 4u);
    // a regex format keeps its language (accept/reject cases in Formats) with far fewer states
    const Grammar email = G(R"({"type": "string", "format": "email"})");
    EXPECT_LE(email.num_states(), 16u);
    EXPECT_TRUE(accepts(email, R"("a.b@c-d.example.org")"));
    EXPECT_FALSE(accepts(email, R"("a..b@c.org")"));
}

TEST(JsonSchema, String) {
    auto g = G(R"({"type": "string"})");
    for (const char* ok : {R"("abc")", R"("")", R"("a\"b")", R"("\u00e9\n\t\\")", "\"é漢字😀\"", R"("\/")"})
        EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"abc", "\"abc", R"("\ud800")", "\"a\nb\"", "\"\xC3(\"", R"("\x")", R"("a" )"})
        EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(JsonSchema, StringLengthCountsCodePoints) {
    auto g = G(R"({"type": "string", "minLength": 1, "maxLength": 2})");
    for (const char* ok : {"\"a\"", "\"éé\"", R"("\n\t")", "\"😀x\""}) EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"\"\"", "\"abc\"", "\"ééé\""}) EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(JsonSchema, IntegerBounds) {
    auto g = G(R"({"type": "integer", "minimum": -5, "maximum": 120})");
    for (const char* ok : {"-5", "0", "120", "37", "9", "100", "-1"}) EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"-6", "121", "007", "-0", "1.5", "1000", "+1", "1e2"}) EXPECT_FALSE(accepts(g, bad)) << bad;
    auto ex = G(R"({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})");
    EXPECT_TRUE(accepts(ex, "1"));
    EXPECT_TRUE(accepts(ex, "9"));
    EXPECT_FALSE(accepts(ex, "0"));
    EXPECT_FALSE(accepts(ex, "10"));
    auto big = G(R"({"type": "integer", "minimum": 1000})");
    EXPECT_TRUE(accepts(big, "1000"));
    EXPECT_TRUE(accepts(big, "98765432"));
    EXPECT_FALSE(accepts(big, "999"));
}

TEST(JsonSchema, Number) {
    auto g = G(R"({"type": "number"})");
    for (const char* ok : {"0", "1.5", "-0.25", "3e10", "-2E-5", "12", "-0"}) EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"1.", ".5", "01", "1e", "--1", "NaN"}) EXPECT_FALSE(accepts(g, bad)) << bad;
    auto b = G(R"({"type": "number", "minimum": 0, "maximum": 10})");
    for (const char* ok : {"0", "10", "9.99", "0.5"}) EXPECT_TRUE(accepts(b, ok)) << ok;
    for (const char* bad : {"10.5", "-1", "-0.5", "11", "1e3"}) EXPECT_FALSE(accepts(b, bad)) << bad;
    EXPECT_THROW(G(R"({"type": "number", "minimum": 0.5, "maximum": 0.25})"), SchemaError);
    EXPECT_THROW(G(R"({"type": "number", "exclusiveMinimum": 1.5, "maximum": 1.5})"), SchemaError);
    EXPECT_THROW(G(R"({"type": "number", "minimum": 0.1234567890123456})"), SchemaError);   // > 15 fraction digits
}

// Non-integral bounds: every decimal in [-3, 3] (steps of 0.001, written plainly and with trailing zeros) is
// accepted exactly when it satisfies the bounds, for inclusive, exclusive, negative and same-unit bounds.
TEST(JsonSchema, NumberWithNonIntegralBounds) {
    struct B {
        const char* schema;
        int64_t lo, hi;   // thousandths
        bool lo_strict, hi_strict;
    };
    const int64_t none = INT64_MAX;
    for (const B& b : {B{R"("minimum": 0.5, "maximum": 2.25)", 500, 2250, false, false},
                       B{R"("exclusiveMinimum": 0.5, "exclusiveMaximum": 2.25)", 500, 2250, true, true},
                       B{R"("minimum": -1.75, "exclusiveMaximum": -0.125)", -1750, -125, false, true},
                       B{R"("exclusiveMinimum": -0.5, "maximum": 0.5)", -500, 500, true, false},
                       B{R"("minimum": 1.2, "maximum": 1.21)", 1200, 1210, false, false},
                       B{R"("minimum": 0.1)", 100, none, false, false},
                       B{R"("exclusiveMaximum": -2.9)", none, -2900, false, true},
                       B{R"("minimum": -2, "maximum": 1.5)", -2000, 1500, false, false},
                       B{R"("exclusiveMinimum": 1, "exclusiveMaximum": 2)", 1000, 2000, true, true}}) {
        SCOPED_TRACE(b.schema);
        Grammar g = G(std::string(R"({"type": "number", )") + b.schema + "}");
        for (int64_t v = -3000; v <= 3000; v += 5) {
            bool in = true;
            if (b.lo != none) in &= b.lo_strict ? v > b.lo : v >= b.lo;
            if (b.hi != none) in &= b.hi_strict ? v < b.hi : v <= b.hi;
            const int64_t a = v < 0 ? -v : v;
            const std::string sign = v < 0 ? "-" : "";
            char frac[8];
            std::snprintf(frac, sizeof frac, "%03lld", static_cast<long long>(a % 1000));
            std::vector<std::string> texts = {sign + std::to_string(a / 1000) + "." + frac + "0"};
            std::string f = frac;
            while (f.size() > 1 && f.back() == '0') f.pop_back();
            texts.push_back(sign + std::to_string(a / 1000) + "." + f);
            if (a % 1000 == 0 && v != 0) texts.push_back(sign + std::to_string(a / 1000));
            for (const auto& t : texts) EXPECT_EQ(accepts(g, t), in) << t;
        }
    }
}

TEST(JsonSchema, MinAndMaxProperties) {
    auto g = G(R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                   "c": {"type": "integer"}}, "minProperties": 1, "maxProperties": 2})");
    for (const char* ok : {R"({"a": 1})", R"({"c": 3})", R"({"a": 1, "b": 2})", R"({"b": 2, "c": 3})"})
        EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"{}", R"({"a": 1, "b": 2, "c": 3})"}) EXPECT_FALSE(accepts(g, bad)) << bad;
    // with additional properties: counted too; the bound holds whatever mix is written
    auto x = G(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                   "additionalProperties": {"type": "boolean"}, "minProperties": 2, "maxProperties": 3})");
    for (const char* ok : {R"({"a": 1, "k": true})", R"({"a": 1, "k": true, "m": false})"}) EXPECT_TRUE(accepts(x, ok)) << ok;
    for (const char* bad : {R"({"a": 1})", R"({"a": 1, "k": true, "m": false, "n": true})", R"({"k": true, "m": true})"})
        EXPECT_FALSE(accepts(x, bad)) << bad;
    // only a minimum: any number of extra keys beyond it
    auto m = G(R"({"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2})");
    EXPECT_FALSE(accepts(m, R"({"k": 1})"));
    EXPECT_TRUE(accepts(m, R"({"k": 1, "m": 2, "n": 3, "o": 4})"));
    for (const char* bad : {R"({"type": "object", "properties": {"a": {}}, "required": ["a"], "maxProperties": 0})",
                            R"({"type": "object", "minProperties": 3, "maxProperties": 2})",
                            R"({"type": "object", "properties": {"a": {}}, "minProperties": 2})",
                            R"({"type": "object", "maxProperties": -1})"})
        EXPECT_THROW(G(bad), SchemaError) << bad;
}

TEST(JsonSchema, BooleanNullEnumConst) {
    EXPECT_TRUE(accepts(G(R"({"type": "boolean"})"), "false"));
    EXPECT_FALSE(accepts(G(R"({"type": "boolean"})"), "1"));
    EXPECT_TRUE(accepts(G(R"({"type": "null"})"), "null"));
    auto e = G(R"({"enum": ["a", 1, null, {"x": [1, 2]}]})");
    for (const char* ok : {R"("a")", "1", "null", R"({"x": [1, 2]})"}) EXPECT_TRUE(accepts(e, ok)) << ok;
    for (const char* bad : {R"("b")", "2", R"({"x":[1,2]})"}) EXPECT_FALSE(accepts(e, bad)) << bad;
    auto c = G(R"({"const": "fixed"})");
    EXPECT_TRUE(accepts(c, R"("fixed")"));
    EXPECT_FALSE(accepts(c, R"("fixe")"));
    auto typed = G(R"({"type": "string", "enum": ["a", 1]})");
    EXPECT_FALSE(accepts(typed, "1"));
    EXPECT_THROW(G(R"({"enum": ["a"], "maxLength": 3})"), SchemaError);
}

TEST(JsonSchema, ObjectRequiredOptionalOrder) {
    auto g = G(R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                   "c": {"type": "boolean"}}, "required": ["b"]})");
    for (const char* ok : {R"({"b": "x"})", R"({"a": 1, "b": "x"})", R"({"a": 1, "b": "x", "c": true})",
                           R"({"b": "x", "c": false})"})
        EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"{}", R"({"a": 1})", R"({"b": "x", "a": 1})", R"({"a":1,"b":"x"})", R"({"b": "x", "d": 1})",
                            R"({ "b": "x"})", R"({"b": "x",  "c": true})"})
        EXPECT_FALSE(accepts(g, bad)) << bad;
    auto empty = G(R"({"type": "object", "properties": {}})");
    EXPECT_TRUE(accepts(empty, "{}"));
    EXPECT_FALSE(accepts(empty, R"({"a": 1})"));
}

TEST(JsonSchema, AdditionalProperties) {
    auto g = G(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}})");
    for (const char* ok : {R"({"a": 1, "zz": "q"})", R"({"k": "v"})", R"({"a": 1})", R"({"ab": "v", "k": "w"})"})
        EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {R"({"a": 1, "a": "x"})", R"({"k": 1})", R"({"a": "x"})"}) EXPECT_FALSE(accepts(g, bad)) << bad;
    auto any = G(R"({"type": "object", "additionalProperties": true})");
    EXPECT_TRUE(accepts(any, R"({"k": [1, {"z": null}], "m": "s"})"));
    auto none = G(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false})");
    EXPECT_FALSE(accepts(none, R"({"a": 1, "b": "x"})"));
}

TEST(JsonSchema, Combinators) {
    auto any = G(R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})");
    EXPECT_TRUE(accepts(any, R"("s")"));
    EXPECT_TRUE(accepts(any, "5"));
    EXPECT_FALSE(accepts(any, "true"));
    auto one = G(R"({"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
        {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}}, "required": ["kind"]}]})");
    EXPECT_TRUE(accepts(one, R"({"kind": "a", "x": 1})"));
    EXPECT_TRUE(accepts(one, R"({"kind": "b"})"));
    EXPECT_FALSE(accepts(one, R"({"kind": "a"})"));
    try {
        G(R"({"oneOf": [{"type": "integer"}, {"type": "number"}]})");
        FAIL() << "overlapping oneOf accepted";
    } catch (const SchemaError& e) {
        EXPECT_EQ(e.keyword(), "oneOf");
    }
    auto all = G(R"({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                               {"properties": {"b": {"type": "string"}}, "required": ["b"]}]})");
    EXPECT_TRUE(accepts(all, R"({"a": 1, "b": "x"})"));
    EXPECT_FALSE(accepts(all, R"({"a": 1})"));
    auto sib = G(R"({"type": "object", "properties": {"t": {"type": "string"}}, "required": ["t"],
                    "anyOf": [{"properties": {"n": {"type": "integer"}}, "required": ["n"]}, {"properties": {"s": {"type": "string"}}, "required": ["s"]}]})");
    EXPECT_TRUE(accepts(sib, R"({"t": "x", "n": 1})"));
    EXPECT_TRUE(accepts(sib, R"({"t": "x", "s": "y"})"));
    EXPECT_FALSE(accepts(sib, R"({"n": 1})"));
}

TEST(JsonSchema, Arrays) {
    auto g = G(R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3})");
    for (const char* ok : {"[1]", "[1, 2]", "[1, 2, 3]"}) EXPECT_TRUE(accepts(g, ok)) << ok;
    for (const char* bad : {"[]", "[1, 2, 3, 4]", "[1,2]", "[\"a\"]"}) EXPECT_FALSE(accepts(g, bad)) << bad;
    auto t = G(R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})");
    EXPECT_TRUE(accepts(t, R"(["a", 1])"));
    EXPECT_TRUE(accepts(t, R"(["a"])"));
    EXPECT_FALSE(accepts(t, R"(["a", 1, 2])"));
    EXPECT_FALSE(accepts(t, R"([1])"));
    auto u = G(R"({"type": "array"})");
    EXPECT_TRUE(accepts(u, R"([1, "a", [null], {"k": true}])"));
}

TEST(JsonSchema, PatternAndFormats) {
    auto p = G(R"({"type": "string", "pattern": "^[a-z]+-\\d{2}$"})");
    EXPECT_TRUE(accepts(p, R"("ab-12")"));
    EXPECT_FALSE(accepts(p, R"("ab-1")"));
    EXPECT_FALSE(accepts(p, R"("Ab-12")"));
    auto search = G(R"({"type": "string", "pattern": "ab"})");
    EXPECT_TRUE(accepts(search, R"("xxabyy")"));
    EXPECT_FALSE(accepts(search, R"("a b")"));
    auto quote = G(R"({"type": "string", "pattern": "^say \"hi\"\\n$"})");
    EXPECT_TRUE(accepts(quote, R"("say \"hi\"\n")"));
    auto date = G(R"({"type": "string", "format": "date"})");
    EXPECT_TRUE(accepts(date, R"("2024-02-28")"));
    EXPECT_TRUE(accepts(date, R"("1999-12-31")"));
    for (const char* leap : {R"("2024-02-29")", R"("2000-02-29")", R"("1600-02-29")", R"("1996-02-29")"})
        EXPECT_TRUE(accepts(date, leap)) << leap;
    for (const char* not_leap : {R"("2023-02-29")", R"("1900-02-29")", R"("2100-02-29")", R"("2022-02-29")"})
        EXPECT_FALSE(accepts(date, not_leap)) << not_leap;
    for (const char* bad : {R"("2024-02-30")", R"("2024-13-01")", R"("2024-04-31")", R"("24-01-01")"})
        EXPECT_FALSE(accepts(date, bad)) << bad;
    EXPECT_TRUE(accepts(G(R"({"type": "string", "format": "date-time"})"), R"("2024-05-06T07:08:09.123Z")"));
    EXPECT_TRUE(accepts(G(R"({"type": "string", "format": "time"})"), R"("23:59:59+02:00")"));
    EXPECT_FALSE(accepts(G(R"({"type": "string", "format": "time"})"), R"("24:00:00Z")"));
    EXPECT_TRUE(accepts(G(R"({"type": "string", "format": "uuid"})"), R"("123e4567-e89b-12d3-a456-426614174000")"));
    EXPECT_TRUE(accepts(G(R"({"type": "string", "format": "email"})"), R"("a.b+c@example.co.uk")"));
    EXPECT_FALSE(accepts(G(R"({"type": "string", "format": "email"})"), R"("a@b")"));
    EXPECT_TRUE(accepts(G(R"({"type": "string", "format": "uri"})"), R"("https://x.org/a?b=c#d")"));
    EXPECT_FALSE(accepts(G(R"({"type": "string", "format": "uri"})"), R"("not a uri")"));
    for (const char* bad : {"(?=a)", "\\1", "a{2,1}", "\\p{L}", "(a", "a^b"}) {
        json s = {{"type", "string"}, {"pattern", bad}};
        try {
            Grammar::from_json_schema(s, testing::small_vocab());
            ADD_FAILURE() << "accepted pattern " << bad;
        } catch (const SchemaError& e) {
            EXPECT_EQ(e.keyword(), "pattern");
        }
    }
}

TEST(JsonSchema, NullableAndTypeUnions) {
    auto g = G(R"({"type": ["string", "null"]})");
    EXPECT_TRUE(accepts(g, "null"));
    EXPECT_TRUE(accepts(g, R"("x")"));
    EXPECT_FALSE(accepts(g, "1"));
    auto n = G(R"({"type": "integer", "nullable": true})");
    EXPECT_TRUE(accepts(n, "null"));
    EXPECT_TRUE(accepts(n, "3"));
}

TEST(JsonSchema, RefsAndRecursion) {
    auto g = G(R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}}, "$ref": "#/$defs/node"})");
    EXPECT_TRUE(accepts(g, R"({"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]})"));
    EXPECT_FALSE(accepts(g, R"({"v": 1, "kids": [{}]})"));
    auto self = G(R"({"type": "object", "properties": {"next": {"$ref": "#"}, "x": {"type": "integer"}}, "required": ["x"]})");
    EXPECT_TRUE(accepts(self, R"({"next": {"x": 2}, "x": 1})"));
    EXPECT_THROW(G(R"({"anyOf": [{"$ref": "#"}, {"type": "null"}]})"), std::runtime_error);   // left recursion
    EXPECT_THROW(G(R"({"$ref": "#/$defs/missing"})"), SchemaError);
    // unsatisfiable recursion: a required property that must contain itself forever
    EXPECT_THROW(G(R"({"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]})"), std::runtime_error);
}

// Hostile schemas (from MCP servers, tool files, HTTP requests): each ends in well under a second with an error
// naming the limit (and the JSON pointer where there is one), never a hang or a crash.
TEST(JsonSchemaLimits, HostileSchemasAreRefusedQuickly) {
    auto props = json::object();
    for (int i = 0; i < 2000; ++i) props["p" + std::to_string(i)] = json{{"type", "integer"}};
    std::string alt;
    for (int i = 0; i < 2000; ++i) alt += (i ? "|" : "") + std::string("word") + std::to_string(i);
    json enum_big = json::array();
    for (int i = 0; i < 5000; ++i) enum_big.push_back(i);
    struct Case {
        std::string name;
        json schema;
        std::string says;
    };
    const std::vector<Case> cases = {
        {"many properties", json{{"type", "object"}, {"properties", props}}, "more than the limit of 1024"},
        {"huge const", json{{"const", std::string(200000, 'x')}}, "more than the limit of 65536"},
        {"huge enum", json{{"enum", enum_big}}, "more than the limit of 4096"},
        {"long alternation", json{{"type", "string"}, {"pattern", alt}}, "more than the limit of 4096"},
        {"nested repetition", json{{"type", "string"}, {"pattern", "^(x{1,100}){1,100}$"}}, "automaton states"},
        {"exponential subsets", json{{"type", "string"}, {"pattern", "^(a|b)*a(a|b){16}$"}}, "grammar too large"},
    };
    for (const auto& c : cases) {
        const auto t0 = std::chrono::steady_clock::now();
        try {
            G(c.schema.dump());
            ADD_FAILURE() << c.name << ": accepted";
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.name << ": " << e.what();
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_LT(s, 1.0) << c.name;
    }
    json tools = json::array();
    for (int i = 0; i < 1100; ++i) tools.push_back(json{{"name", "t" + std::to_string(i)}});
    EXPECT_THROW(parse_tools(tools), std::runtime_error);
}

TEST(JsonSchema, UnsupportedKeywordsNameKeywordAndPath) {
    struct Case {
        const char* schema;
        const char* keyword;
        const char* path;
    };
    for (const Case& c : {Case{R"({"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 3}}})", "multipleOf",
                               "/properties/a/multipleOf"},
                          Case{R"({"not": {"type": "string"}})", "not", "/not"},
                          Case{R"({"type": "object", "patternProperties": {"^x": {}}})", "patternProperties", "/patternProperties"},
                          Case{R"({"type": "array", "uniqueItems": true})", "uniqueItems", "/uniqueItems"},
                          Case{R"({"if": {}, "then": {}})", "if", "/if"},
                          Case{R"({"type": "string", "format": "color"})", "format", "/format"},
                          Case{R"({"type": "object", "dependentRequired": {}})", "dependentRequired", "/dependentRequired"},
                          Case{R"({"type": "strin"})", "type", "/type"}}) {
        try {
            G(c.schema);
            ADD_FAILURE() << "accepted " << c.schema;
        } catch (const SchemaError& e) {
            EXPECT_EQ(e.keyword(), c.keyword) << c.schema;
            EXPECT_EQ(e.path(), c.path) << c.schema;
            EXPECT_NE(std::string(e.what()).find(c.keyword), std::string::npos);
        }
    }
    // annotations are ignored
    EXPECT_TRUE(accepts(G(R"({"type": "integer", "description": "d", "title": "t", "default": 3, "examples": [1]})"), "1"));
}

// The cached mask must equal what accept_token says for every token, along random paths.
TEST(Engine, MaskEqualsBruteForce) {
    auto vocab = testing::small_vocab();
    std::vector<json> schemas = {
        json::parse(R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 3},
                     "c": {"type": "array", "items": {"type": "number"}}}, "required": ["a"]})"),
        json::parse(R"({"anyOf": [{"type": "string", "format": "date"}, {"enum": [1, 12, 123]}, {"type": "null"}]})"),
        json::parse(R"({"$defs": {"t": {"type": "object", "properties": {"k": {"type": "array", "items": {"$ref": "#/$defs/t"}, "maxItems": 2}}}}, "$ref": "#/$defs/t"})"),
        json::parse(R"({"type": "object", "additionalProperties": {"type": "boolean"}})")};
    std::mt19937_64 rng(7);
    for (const auto& s : schemas) {
        Grammar g = Grammar::from_json_schema(s, vocab);
        for (int run = 0; run < 6; ++run) {
            Matcher m(g);
            std::vector<uint32_t> mask(m.mask_words());
            for (int step = 0; step < 60 && !m.is_terminated(); ++step) {
                m.fill_next_token_bitmask(mask.data());
                ASSERT_GT(count_allowed(mask.data(), mask.size()), 0u) << s.dump();
                for (int32_t t = 0; t < vocab->size(); ++t) {
                    Matcher probe = m;
                    ASSERT_EQ(probe.accept_token(t), token_allowed(mask.data(), t))
                        << "token " << t << " '" << vocab->token_bytes(t) << "' step " << step << " schema " << s.dump();
                }
                int32_t pick = testing::random_allowed(mask, rng);
                ASSERT_TRUE(m.accept_token(pick));
            }
        }
    }
}

TEST(Engine, RollbackRestoresState) {
    auto g = G(R"({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})");
    Matcher m(g);
    std::vector<uint32_t> before(m.mask_words()), after(m.mask_words());
    for (int32_t id : testing::ids_of(g.vocab(), "{\"a\": \"x")) ASSERT_TRUE(m.accept_token(id));
    m.fill_next_token_bitmask(before.data());
    for (int32_t id : testing::ids_of(g.vocab(), "y\"}")) ASSERT_TRUE(m.accept_token(id));
    EXPECT_TRUE(m.can_terminate());
    ASSERT_TRUE(m.accept_token(*g.vocab().added_id("<|im_end|>")));
    EXPECT_TRUE(m.is_terminated());
    m.fill_next_token_bitmask(after.data());
    EXPECT_EQ(count_allowed(after.data(), after.size()), 0u);
    m.rollback(4);
    EXPECT_FALSE(m.is_terminated());
    m.fill_next_token_bitmask(after.data());
    EXPECT_EQ(before, after);
    EXPECT_FALSE(m.accept_token('\x01'));   // raw control character: rejected, state unchanged
    EXPECT_EQ(m.num_accepted(), 8u);
    EXPECT_THROW(m.rollback(9), std::runtime_error);
}

TEST(Bitmask, ApplyToLogits) {
    std::vector<float> logits(70, 1.0f);
    std::vector<uint32_t> words = {0x5u, 0x0u};   // tokens 0 and 2; ids >= 64 beyond the mask
    apply_token_bitmask(logits.data(), logits.size(), words.data(), words.size());
    EXPECT_EQ(logits[0], 1.0f);
    EXPECT_EQ(logits[2], 1.0f);
    EXPECT_TRUE(std::isinf(logits[1]));
    EXPECT_TRUE(std::isinf(logits[69]));
}

}  // namespace
}  // namespace qnext::constrain
