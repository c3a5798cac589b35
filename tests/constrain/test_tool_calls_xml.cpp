// The Qwen3.5 XML tool-call format: the same tool_choice modes, parallel calls, thinking and streaming-parser
// properties as test_tool_calls.cpp (hermes JSON), for
//   <tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n</function>\n</tool_call>
// String parameters are raw text, others JSON; required parameters enforced; declared order.
#include <gtest/gtest.h>

#include "agent/constrain/constrain.h"
#include "agent/constrain/tool_grammar.h"
#include "tests/constrain/test_util.h"
#include "tests/constrain/tool_events.h"

namespace qnext::constrain {
namespace {

using json = nlohmann::ordered_json;
using testing::accepts;
using testing::accepts_prefix;
using testing::allowed_next;
using testing::feed;
using testing::Summary;
using testing::summarize;

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                   "unit": {"enum": ["c", "f"]}, "days": {"type": "integer", "minimum": 1},
                   "opts": {"type": "object", "properties": {"hourly": {"type": "boolean"}}}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");

Grammar T(const std::string& choice, bool parallel = true, bool thinking = false, const json& tools = kTools) {
    ToolCallOptions o;
    o.choice = choice;
    o.parallel_tool_calls = parallel;
    o.thinking = thinking;
    o.format = ToolFormat::Xml;
    return Grammar::from_tools(tools, o, testing::small_vocab());
}

const std::string kCallW =
    "[[<tool_call>]]\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n[[</tool_call>]]";
const std::string kCallT = "[[<tool_call>]]\n<function=get_time>\n</function>\n[[</tool_call>]]";

std::string call_w(const std::string& params) {
    return "[[<tool_call>]]\n<function=get_weather>\n" + params + "</function>\n[[</tool_call>]]";
}
std::string param(const std::string& name, const std::string& value) {
    return "<parameter=" + name + ">\n" + value + "\n</parameter>\n";
}


TEST(XmlToolCalls, Auto) {
    auto g = T("auto");
    EXPECT_TRUE(accepts(g, "Hello there"));
    EXPECT_TRUE(accepts(g, ""));
    EXPECT_TRUE(accepts(g, kCallW));
    EXPECT_TRUE(accepts(g, "Let me check.\n\n" + kCallW));
    EXPECT_TRUE(accepts(g, kCallW + "\n" + kCallT));
    EXPECT_FALSE(accepts(g, kCallW + "trailing text"));
    EXPECT_FALSE(accepts(g, "spelled <tool_call> in text"));
    EXPECT_FALSE(accepts_prefix(g, "[[<tool_call>]]\n<function=unknown"));
    EXPECT_FALSE(accepts(g, call_w("")));                                    // city required
    EXPECT_FALSE(accepts(g, call_w(param("unit", "c"))));                    // still no city
    EXPECT_FALSE(accepts(g, call_w(param("town", "Paris"))));                // undeclared parameter
    EXPECT_FALSE(accepts(g, "[[<tool_call>]]<function=get_time>\n</function>\n[[</tool_call>]]"));   // template layout
    EXPECT_TRUE(allowed_next(g, "", "[[<tool_call>]]"));
    EXPECT_TRUE(allowed_next(g, "", "[[<|im_end|>]]"));
    EXPECT_FALSE(allowed_next(g, kCallW, "x"));
}

TEST(XmlToolCalls, ValuesTypedFromTheSchema) {
    auto g = T("auto");
    // strings are raw text over several lines, with characters JSON would escape; never "\n</parameter>"
    EXPECT_TRUE(accepts(g, call_w(param("city", "Saint-\"Denis\"\n\tline 2 </param> ok"))));
    EXPECT_TRUE(accepts(g, call_w(param("city", ""))));
    EXPECT_FALSE(accepts(g, call_w(param("city", "a\n</parameter>\nb"))));
    // declared order, optional ones skippable; enum of strings raw; integer / object as JSON
    EXPECT_TRUE(accepts(g, call_w(param("city", "Oslo") + param("unit", "f") + param("days", "3") +
                                  param("opts", "{\"hourly\": true}"))));
    EXPECT_TRUE(accepts(g, call_w(param("city", "Oslo") + param("days", "7"))));
    EXPECT_FALSE(accepts(g, call_w(param("unit", "f") + param("city", "Oslo"))));   // order
    EXPECT_FALSE(accepts(g, call_w(param("city", "Oslo") + param("unit", "k"))));
    EXPECT_FALSE(accepts(g, call_w(param("city", "Oslo") + param("unit", "\"c\""))));
    EXPECT_FALSE(accepts(g, call_w(param("city", "Oslo") + param("days", "0"))));    // minimum 1
    EXPECT_FALSE(accepts(g, call_w(param("city", "Oslo") + param("days", "three"))));
    EXPECT_FALSE(accepts(g, call_w(param("city", "Oslo") + param("opts", "{\"hourly\": 1}"))));
}

TEST(XmlToolCalls, RequiredNoneNamedParallel) {
    auto r = T("required");
    EXPECT_TRUE(accepts(r, kCallT));
    EXPECT_TRUE(accepts(r, kCallT + "\n" + kCallW));
    EXPECT_FALSE(accepts(r, "text first " + kCallT));
    EXPECT_FALSE(accepts(r, ""));
    auto none = T("none");
    EXPECT_TRUE(accepts(none, "Just text."));
    EXPECT_FALSE(allowed_next(none, "abc", "[[<tool_call>]]"));
    auto named = T("get_time");
    EXPECT_TRUE(accepts(named, kCallT));
    EXPECT_FALSE(accepts(named, kCallW));
    EXPECT_FALSE(accepts(named, kCallT + "\n" + kCallT));
    EXPECT_THROW(T("no_such_tool"), std::runtime_error);
    auto single = T("auto", /*parallel=*/false);
    EXPECT_TRUE(accepts(single, "ok\n\n" + kCallW));
    EXPECT_FALSE(accepts(single, kCallW + "\n" + kCallT));
}

TEST(XmlToolCalls, Thinking) {
    auto g = T("required", true, /*thinking=*/true);
    EXPECT_TRUE(accepts(g, "I might write <tool_call> here[[</think>]]\n\n" + kCallT));
    EXPECT_FALSE(accepts(g, "thinking[[</think>]]" + kCallT));
    EXPECT_FALSE(allowed_next(g, "thinking", "[[<tool_call>]]"));
    EXPECT_TRUE(allowed_next(g, "thinking", "[[</think>]]"));
}

TEST(XmlToolCalls, UnsupportedStringBoundsAreRefused) {
    const json t = json::parse(R"([{"name": "f", "parameters": {"type": "object",
        "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}])");
    try {
        T("auto", true, false, t);
        ADD_FAILURE() << "accepted";
    } catch (const SchemaError& e) {
        EXPECT_EQ(e.keyword(), "pattern");
        EXPECT_NE(std::string(e.what()).find("raw text"), std::string::npos);
    }
    EXPECT_THROW(T("auto", true, false, json::parse(R"([{"name": "f", "parameters": {"anyOf": [{}]}}])")), SchemaError);
}

// ---- streaming parser ----

ToolCallParser xml_parser(bool thinking = false) {
    return ToolCallParser(thinking, /*xml=*/true, xml_string_parameters(parse_tools(kTools)));
}

TEST(XmlToolCallParser, EverySplitGivesTheSameEvents) {
    const std::string text =
        "Let me check.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSão \"Paulo\"\n2nd line 😀\n</parameter>\n"
        "<parameter=unit>\nc\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=opts>\n{\"hourly\": false}\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n</function>\n</tool_call>";
    for (size_t chunk : {1u, 2u, 3u, 5u, 7u, 11u, 1000u}) {
        ToolCallParser p = xml_parser();
        auto ev = feed(p, text, chunk);
        auto fin = p.finish(false);
        ev.insert(ev.end(), fin.begin(), fin.end());
        Summary s = summarize(ev);
        EXPECT_EQ(s.text, "Let me check.") << chunk;
        ASSERT_EQ(s.names.size(), 2u) << chunk;
        EXPECT_EQ(s.names[0], "get_weather");
        EXPECT_EQ(s.names[1], "get_time");
        ASSERT_EQ(s.args.size(), 2u);
        EXPECT_EQ(s.args[0], json::parse(R"({"city": "São \"Paulo\"\n2nd line 😀", "unit": "c", "days": 3,
                                              "opts": {"hourly": false}})"))
            << chunk;
        EXPECT_EQ(s.args_final[1], "{}");
        EXPECT_EQ(p.finish_reason(), "tool_calls");
        EXPECT_EQ(p.num_calls(), 2);
    }
}

TEST(XmlToolCallParser, StringValuesStreamAsTheyCome) {
    ToolCallParser p = xml_parser();
    auto ev = p.push("<tool_call>\n<function=get_weather>\n<parameter=city>\nPar");
    Summary s = summarize(ev);
    ASSERT_EQ(s.names.size(), 1u);
    EXPECT_EQ(s.args_streamed[0], "{\"city\": \"Par");
    EXPECT_TRUE(s.args_final.empty());
    auto more = p.push("is\n</par");   // a partial end marker is held back, not streamed as value text
    ev.insert(ev.end(), more.begin(), more.end());
    EXPECT_EQ(summarize(ev).args_streamed[0], "{\"city\": \"Paris");
    auto end = p.push("ameter>\n</function>\n</tool_call>");
    ev.insert(ev.end(), end.begin(), end.end());
    Summary done = summarize(ev);
    ASSERT_EQ(done.args.size(), 1u);
    EXPECT_EQ(done.args[0], json::parse(R"({"city": "Paris"})"));
}

TEST(XmlToolCallParser, TruncatedAndInvalidCalls) {
    ToolCallParser p = xml_parser();
    auto ev = p.push("Sure.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n");
    auto fin = p.finish(/*hit_length=*/true);
    ev.insert(ev.end(), fin.begin(), fin.end());
    Summary s = summarize(ev);
    EXPECT_TRUE(s.args_final.empty());
    EXPECT_EQ(s.truncated, 1);
    EXPECT_EQ(p.finish_reason(), "length");
    ToolCallParser bad = xml_parser();
    auto e2 = bad.push("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>");   // JSON, not XML
    EXPECT_EQ(summarize(e2).invalid, 1);
    EXPECT_EQ(bad.num_calls(), 0);
    ToolCallParser lenient = xml_parser();   // a non-string value that is not JSON is kept as a string
    auto e3 = lenient.push("<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n<parameter=days>\n"
                           "three\n</parameter>\n</function>\n</tool_call>");
    Summary s3 = summarize(e3);
    ASSERT_EQ(s3.args.size(), 1u);
    EXPECT_EQ(s3.args[0]["days"], "three");
}

TEST(XmlToolCallParser, ThinkingTextIsNotParsed) {
    ToolCallParser p = xml_parser(/*thinking=*/true);
    auto ev = feed(p, "maybe <tool_call>\n<function=get_time>\n</function>\n</tool_call> no</think>\n\nAnswer: 4", 3);
    auto fin = p.finish(false);
    ev.insert(ev.end(), fin.begin(), fin.end());
    Summary s = summarize(ev);
    EXPECT_EQ(s.reasoning, "maybe <tool_call>\n<function=get_time>\n</function>\n</tool_call> no");
    EXPECT_EQ(s.text, "Answer: 4");
    EXPECT_TRUE(s.names.empty());
}

}  // namespace
}  // namespace qnext::constrain
