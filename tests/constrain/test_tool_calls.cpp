// Tool-call structure (every tool_choice mode, parallel calls, thinking) and the streaming parser.
#include <gtest/gtest.h>

#include "agent/constrain/constrain.h"
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
                   "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])");

Grammar T(const std::string& choice, bool parallel = true, bool thinking = false) {
    ToolCallOptions o;
    o.choice = choice;
    o.parallel_tool_calls = parallel;
    o.thinking = thinking;
    return Grammar::from_tools(kTools, o, testing::small_vocab());
}

const std::string kCallW = "[[<tool_call>]]\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n[[</tool_call>]]";
const std::string kCallT = "[[<tool_call>]]\n{\"name\": \"get_time\", \"arguments\": {}}\n[[</tool_call>]]";


TEST(ToolCalls, Auto) {
    auto g = T("auto");
    EXPECT_TRUE(accepts(g, "Hello there"));
    EXPECT_TRUE(accepts(g, ""));
    EXPECT_TRUE(accepts(g, kCallW));
    EXPECT_TRUE(accepts(g, "Let me check.\n" + kCallW));
    EXPECT_TRUE(accepts(g, kCallW + "\n" + kCallT));
    EXPECT_FALSE(accepts(g, kCallW + "trailing text"));
    EXPECT_FALSE(accepts(g, "spelled <tool_call> in text"));
    EXPECT_FALSE(accepts_prefix(g, "[[<tool_call>]]\n{\"name\": \"unknown\""));
    EXPECT_FALSE(accepts(g, "[[<tool_call>]]\n{\"name\": \"get_weather\", \"arguments\": {}}\n[[</tool_call>]]"));   // city required
    EXPECT_FALSE(accepts(g, "[[<tool_call>]]\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 3}}\n[[</tool_call>]]"));
    EXPECT_FALSE(accepts(g, "[[<tool_call>]]{\"name\": \"get_time\", \"arguments\": {}}\n[[</tool_call>]]"));   // template layout
    EXPECT_TRUE(allowed_next(g, "", "[[<tool_call>]]"));
    EXPECT_TRUE(allowed_next(g, "", "[[<|im_end|>]]"));
    EXPECT_FALSE(allowed_next(g, "hi", "[[</think>]]"));
    EXPECT_FALSE(allowed_next(g, kCallW, "x"));
}

TEST(ToolCalls, Required) {
    auto g = T("required");
    EXPECT_TRUE(accepts(g, kCallT));
    EXPECT_TRUE(accepts(g, kCallT + "\n" + kCallW));
    EXPECT_FALSE(accepts(g, "text first " + kCallT));
    EXPECT_FALSE(accepts(g, ""));
    EXPECT_FALSE(allowed_next(g, "", "[[<|im_end|>]]"));
    EXPECT_TRUE(allowed_next(g, "", "[[<tool_call>]]"));
}

TEST(ToolCalls, NoneMasksToolTokens) {
    auto g = T("none");
    EXPECT_TRUE(accepts(g, "Just text."));
    EXPECT_FALSE(allowed_next(g, "", "[[<tool_call>]]"));
    EXPECT_FALSE(allowed_next(g, "abc", "[[<tool_call>]]"));
    EXPECT_FALSE(accepts(g, kCallT));
}

TEST(ToolCalls, NamedAndParallelOff) {
    auto g = T("get_time");
    EXPECT_TRUE(accepts(g, kCallT));
    EXPECT_FALSE(accepts(g, kCallW));
    EXPECT_FALSE(accepts(g, kCallT + "\n" + kCallT));
    EXPECT_FALSE(accepts(g, "text " + kCallT));
    EXPECT_THROW(T("no_such_tool"), std::runtime_error);
    auto single = T("auto", /*parallel=*/false);
    EXPECT_TRUE(accepts(single, "ok " + kCallW));
    EXPECT_FALSE(accepts(single, kCallW + "\n" + kCallT));
    EXPECT_FALSE(allowed_next(single, kCallW, "\n"));
    EXPECT_TRUE(allowed_next(single, kCallW, "[[<|im_end|>]]"));
    auto req1 = T("required", false);
    EXPECT_FALSE(accepts(req1, kCallW + "\n" + kCallT));
}

TEST(ToolCalls, Thinking) {
    auto g = T("required", true, /*thinking=*/true);
    // before </think> anything goes (even tool-call-looking text); then "\n\n" and the structure
    EXPECT_TRUE(accepts(g, "I should call <tool_call> {\"name\": x}[[</think>]]\n\n" + kCallT));
    EXPECT_FALSE(accepts(g, "thinking[[</think>]]" + kCallT));
    EXPECT_FALSE(accepts(g, "thinking[[</think>]]\n\nplain text"));
    EXPECT_FALSE(allowed_next(g, "thinking", "[[<|im_end|>]]"));
    EXPECT_FALSE(allowed_next(g, "thinking", "[[<tool_call>]]"));
    EXPECT_TRUE(allowed_next(g, "thinking", "[[</think>]]"));
    auto js = Grammar::from_json_schema(json::parse(R"({"type": "integer"})"), testing::small_vocab(), {.thinking = true});
    EXPECT_TRUE(accepts(js, "hmm 42?[[</think>]]\n\n42"));
    EXPECT_FALSE(accepts(js, "42"));
}

// ---- streaming parser ----

TEST(ToolCallParser, EverySplitGivesTheSameEvents) {
    const std::string text =
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa\\\"ris}\", \"n\": [1, {\"a\": 2}]}}\n"
        "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    for (size_t chunk : {1u, 2u, 3u, 5u, 7u, 11u, 1000u}) {
        ToolCallParser p;
        auto ev = feed(p, text, chunk);
        auto fin = p.finish(false);
        ev.insert(ev.end(), fin.begin(), fin.end());
        Summary s = summarize(ev);
        EXPECT_EQ(s.text, "Let me check.") << chunk;
        ASSERT_EQ(s.names.size(), 2u) << chunk;
        EXPECT_EQ(s.names[0], "get_weather");
        EXPECT_EQ(s.names[1], "get_time");
        ASSERT_EQ(s.args_final.size(), 2u);
        EXPECT_EQ(s.args_final[0], "{\"city\": \"Pa\\\"ris}\", \"n\": [1, {\"a\": 2}]}");
        EXPECT_EQ(s.args_final[1], "{}");
        EXPECT_EQ(p.finish_reason(), "tool_calls");
    }
}

TEST(ToolCallParser, NameKnownBeforeArgumentsComplete) {
    ToolCallParser p;
    auto ev = p.push("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par");
    Summary s = summarize(ev);
    ASSERT_EQ(s.names.size(), 1u);
    EXPECT_EQ(s.args_streamed[0], "{\"city\": \"Par");
    EXPECT_TRUE(s.args_final.empty());
}

TEST(ToolCallParser, TruncatedCallIsNeverComplete) {
    ToolCallParser p;
    auto ev = p.push("Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n");
    auto fin = p.finish(/*hit_length=*/true);
    ev.insert(ev.end(), fin.begin(), fin.end());
    Summary s = summarize(ev);
    EXPECT_TRUE(s.args_final.empty());
    EXPECT_EQ(s.truncated, 1);
    EXPECT_EQ(p.finish_reason(), "length");
    ToolCallParser q;
    q.push("<tool_call>\n{\"name\": \"get_ti");
    auto f2 = q.finish(true);
    ASSERT_EQ(f2.size(), 1u);
    EXPECT_EQ(f2[0].kind, ToolCallEvent::Kind::CallTruncated);
}

TEST(ToolCallParser, ThinkingTextIsNotParsed) {
    ToolCallParser p(/*thinking=*/true);
    auto ev = feed(p, "maybe <tool_call>\n{\"name\": \"x\", \"arguments\": {}}\n</tool_call> no</think>\n\nAnswer: 4", 3);
    auto fin = p.finish(false);
    ev.insert(ev.end(), fin.begin(), fin.end());
    Summary s = summarize(ev);
    EXPECT_EQ(s.reasoning, "maybe <tool_call>\n{\"name\": \"x\", \"arguments\": {}}\n</tool_call> no");
    EXPECT_EQ(s.text, "Answer: 4");
    EXPECT_TRUE(s.names.empty());
    EXPECT_EQ(p.finish_reason(), "stop");
}

TEST(ToolCallParser, PartialMarkersAndInvalidCalls) {
    ToolCallParser p;
    auto ev = feed(p, "a < b and <tool_ca", 4);
    auto fin = p.finish(false);
    ev.insert(ev.end(), fin.begin(), fin.end());
    EXPECT_EQ(summarize(ev).text, "a < b and <tool_ca");
    ToolCallParser bad;
    auto e2 = bad.push("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>");
    EXPECT_EQ(summarize(e2).invalid, 1);
    EXPECT_EQ(bad.num_calls(), 0);
    ToolCallParser order;   // other key order: parsed as a whole at </tool_call>
    auto e3 = order.push("<tool_call>\n{\"arguments\": {\"q\": 1}, \"name\": \"f\"}\n</tool_call>");
    Summary s3 = summarize(e3);
    ASSERT_EQ(s3.names.size(), 1u);
    EXPECT_EQ(s3.args_final[0], "{\"q\":1}");
}

}  // namespace
}  // namespace qnext::constrain
