// Argument checks against the declared JSON Schemas, and the tool-result text formats.
#include <fstream>

#include <gtest/gtest.h>

#include "tools/format.h"
#include "tools/schema_check.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

ojson builtin(const std::string& name) {
    std::ifstream in(std::string(QNEXT_SOURCE_DIR) + "/configs/tools/builtin.json");
    for (const auto& t : ojson::parse(in))
        if (t["function"]["name"] == name) return t["function"]["parameters"];
    throw std::runtime_error("no builtin " + name);
}

TEST(SchemaCheck, BuiltinReadFile) {
    const ojson s = builtin("read_file");
    EXPECT_EQ(check_against_schema(s, {{"path", "a.txt"}}), "");
    EXPECT_EQ(check_against_schema(s, {{"path", "a.txt"}, {"start_line", 2}, {"end_line", 3}}), "");
    EXPECT_EQ(check_against_schema(s, {{"path", "a.txt"}, {"start_line", 2.0}}), "");  // 2.0 is an integer
    EXPECT_EQ(check_against_schema(s, ojson::object()), "arguments: missing required property 'path'");
    EXPECT_EQ(check_against_schema(s, {{"path", 5}}), "arguments.path: expected string, got integer");
    EXPECT_EQ(check_against_schema(s, {{"path", "a"}, {"start_line", 0}}),
              "arguments.start_line: 0 is less than the minimum 1");
    EXPECT_EQ(check_against_schema(s, {{"path", "a"}, {"start_line", 1.5}}),
              "arguments.start_line: expected integer, got number");
    EXPECT_EQ(check_against_schema(s, {{"path", "a"}, {"mode", "rw"}}), "arguments: unknown property 'mode'");
}

TEST(SchemaCheck, Keywords) {
    const ojson s = ojson::parse(R"({
      "type": "object",
      "properties": {
        "unit": {"enum": ["c", "f"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2},
        "name": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
        "n": {"type": ["integer", "null"], "exclusiveMaximum": 10},
        "choice": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
        "extra": {"type": "object", "additionalProperties": {"type": "number"}}
      }
    })");
    EXPECT_EQ(check_against_schema(s, {{"unit", "c"}, {"tags", {"ab"}}, {"name", "xy"}, {"n", nullptr}}), "");
    EXPECT_EQ(check_against_schema(s, {{"unit", "k"}}), R"(arguments.unit: "k" is not one of ["c","f"])");
    EXPECT_EQ(check_against_schema(s, {{"tags", {"abcd"}}}), "arguments.tags[0]: longer than 3 characters");
    EXPECT_EQ(check_against_schema(s, {{"tags", {"a", "b", "c"}}}), "arguments.tags: more than 2 items");
    EXPECT_EQ(check_against_schema(s, {{"name", "é"}}), "arguments.name: shorter than 2 characters");
    EXPECT_EQ(check_against_schema(s, {{"name", "AB"}}), R"(arguments.name: does not match the pattern "^[a-z]+$")");
    EXPECT_EQ(check_against_schema(s, {{"n", 10}}), "arguments.n: 10 must be less than 10");
    EXPECT_EQ(check_against_schema(s, {{"choice", 3}}), "arguments.choice: expected string, got integer");
    EXPECT_EQ(check_against_schema(s, {{"extra", {{"a", 1}, {"b", "x"}}}}), "arguments.extra.b: expected number, got string");
}

TEST(Format, ProcessResultsMatchTheDemoFormat) {
    ProcessOutcome p;
    p.exit_code = 0;
    p.out = "42\n\n";
    EXPECT_EQ(format_process_result(p), "42");
    p.err = "warning\n";
    EXPECT_EQ(format_process_result(p), "42\nstderr:\nwarning");
    p.exit_code = 1;
    EXPECT_EQ(format_process_result(p), "42\nstderr:\nwarning\nexit code: 1");
    p.out = "";
    EXPECT_EQ(format_process_result(p), "stderr:\nwarning\nexit code: 1");
    ProcessOutcome empty;
    empty.exit_code = 0;
    EXPECT_EQ(format_process_result(empty), "(no output)");
    ProcessOutcome killed;
    killed.signal = 9;
    EXPECT_EQ(format_process_result(killed), "killed by signal 9 (SIGKILL)");
    ProcessOutcome slow;
    slow.timed_out = true;
    slow.timeout_s = 2.5;
    slow.out = "partial\n";
    EXPECT_EQ(format_process_result(slow), "error: timed out after 2.5 s\npartial");
    ProcessOutcome mem;
    mem.signal = 9;
    mem.limit = "memory";
    EXPECT_EQ(format_process_result(mem), "killed by signal 9 (SIGKILL)\nerror: memory limit exceeded");
    ProcessOutcome big;
    big.exit_code = 0;
    big.out = "x";
    big.truncated = true;
    EXPECT_EQ(format_process_result(big), "x\n[output truncated]");
}

TEST(Format, CapKeepsHeadAndTailOnCharacterBoundaries) {
    std::string s(60, 'a');
    for (int i = 0; i < 40; ++i) s += "é";
    const std::string capped = cap_text(s, 100);
    EXPECT_LE(capped.size(), 100u);
    EXPECT_EQ(capped.substr(0, 10), std::string(10, 'a'));
    EXPECT_NE(capped.find("bytes omitted"), std::string::npos);
    EXPECT_EQ(sanitize_utf8(capped), capped) << "cut inside a UTF-8 sequence";
    EXPECT_EQ(capped.substr(capped.size() - 2), "é");
    EXPECT_EQ(cap_text("short", 100), "short");
}

TEST(Format, SanitizeUtf8) {
    EXPECT_EQ(sanitize_utf8("ok ✓"), "ok ✓");
    EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(error_text("bad thing\n"), "error: bad thing");
}

}  // namespace
}  // namespace qnext::tools
