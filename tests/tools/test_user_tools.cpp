// User tools: loading checks and argv-template expansion that cannot inject shell syntax or options.
#include <gtest/gtest.h>

#include "tools/user_tools.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

UserTool make_tool(const ojson& argv, const ojson& props, const ojson& extra = ojson::object()) {
    ojson t = {{"name", "t"},
               {"description", "test tool"},
               {"parameters", {{"type", "object"}, {"properties", props}}},
               {"argv", argv}};
    for (const auto& [k, v] : extra.items()) t[k] = v;
    return parse_user_tools(ojson{{"tools", {t}}}, "test.json").at(0);
}

std::string expand_error(const UserTool& t, const ojson& args) {
    try {
        expand_user_tool(t, args);
    } catch (const ArgumentError& e) {
        return e.what();
    }
    return "";
}

const ojson kStr = {{"type", "string"}};

TEST(UserTools, TemplateParsing) {
    ArgTemplate t = parse_template("--out={path}.txt");
    ASSERT_EQ(t.size(), 3u);
    EXPECT_FALSE(t[0].is_placeholder);
    EXPECT_EQ(t[0].text, "--out=");
    EXPECT_TRUE(t[1].is_placeholder);
    EXPECT_EQ(t[1].text, "path");
    EXPECT_EQ(t[2].text, ".txt");
    t = parse_template("{{literal}}");
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].text, "{literal}");
    EXPECT_THROW(parse_template("{unclosed"), std::runtime_error);
    EXPECT_THROW(parse_template("stray}"), std::runtime_error);
    EXPECT_THROW(parse_template("{bad name}"), std::runtime_error);
    EXPECT_THROW(parse_template("{}"), std::runtime_error);
}

TEST(UserTools, LoadRejectsBadDeclarations) {
    const ojson props = {{"x", kStr}};
    EXPECT_THROW(make_tool({"{x}"}, props), std::runtime_error);            // program from an argument
    EXPECT_THROW(make_tool({"echo", "{y}"}, props), std::runtime_error);    // undeclared placeholder
    EXPECT_THROW(make_tool(ojson::array(), props), std::runtime_error);     // empty argv
    EXPECT_THROW(make_tool({"echo", 5}, props), std::runtime_error);        // non-string element
    EXPECT_THROW(make_tool({"echo"}, props, {{"shell", true}}), std::runtime_error);  // unknown key
    EXPECT_THROW(make_tool({"echo"}, props, {{"timeout_s", -1}}), std::runtime_error);
    EXPECT_THROW(parse_user_tools(ojson{{"tools", {{{"name", "bad name"}, {"description", ""}, {"argv", {"x"}}}}}}, "f"),
                 std::runtime_error);
}

// An OpenAI tool list given where a tools file is expected: one clear error saying what is missing.
TEST(UserTools, OpenAIToolListIsAClearError) {
    const ojson list = ojson::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", ojson::object()}}}}});
    try {
        parse_user_tools(list, "tools.json");
        ADD_FAILURE() << "accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("OpenAI tool list"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("argv"), std::string::npos) << e.what();
    }
}

TEST(UserTools, ShellSyntaxStaysOneLiteralArgument) {
    const UserTool t = make_tool({"grep", "-n", "--", "{pattern}", "{file}"}, {{"pattern", kStr}, {"file", kStr}});
    for (const std::string evil : {"; rm -rf /", "$(touch /tmp/pwned)", "`id`", "a\nrm -rf /", "x | cat /etc/shadow",
                                   "&& reboot", "'quoted' \"double\"", "$HOME", "*"}) {
        ExpandedCall c = expand_user_tool(t, {{"pattern", evil}, {"file", "notes.txt"}});
        ASSERT_EQ(c.argv.size(), 5u) << evil;
        EXPECT_EQ(c.argv[3], evil);  // byte-identical, one element, no splitting or expansion
        EXPECT_EQ(c.argv[4], "notes.txt");
    }
}

TEST(UserTools, LeadingDashOptionInjectionIsRefused) {
    const UserTool t = make_tool({"convert", "{input}", "{output}"}, {{"input", kStr}, {"output", kStr}});
    EXPECT_EQ(expand_error(t, {{"input", "--help"}, {"output", "b.png"}}),
              "argument 'input' must not start with '-' (it would be read as an option)");
    EXPECT_NE(expand_error(t, {{"input", "a.png"}, {"output", "-delete"}}), "");
    EXPECT_EQ(expand_error(t, {{"input", "a.png"}, {"output", "b-c.png"}}), "");  // dashes inside are fine
    // After an explicit "--" options are over, so a leading dash is harmless.
    const UserTool safe = make_tool({"cat", "--", "{file}"}, {{"file", kStr}});
    EXPECT_EQ(expand_user_tool(safe, {{"file", "-n"}}).argv, (std::vector<std::string>{"cat", "--", "-n"}));
    // A value after literal text in the same element cannot become an option.
    const UserTool eq = make_tool({"tool", "--name={name}"}, {{"name", kStr}});
    EXPECT_EQ(expand_user_tool(eq, {{"name", "-x"}}).argv, (std::vector<std::string>{"tool", "--name=-x"}));
    // Declared numbers may be negative.
    const UserTool num = make_tool({"seq", "{n}"}, {{"n", {{"type", "integer"}}}});
    EXPECT_EQ(expand_user_tool(num, {{"n", -3}}).argv, (std::vector<std::string>{"seq", "-3"}));
    // Array items get the same check.
    const UserTool files = make_tool({"wc", "{files}"}, {{"files", {{"type", "array"}}}});
    EXPECT_EQ(expand_user_tool(files, {{"files", {"a", "b"}}}).argv, (std::vector<std::string>{"wc", "a", "b"}));
    EXPECT_NE(expand_error(files, {{"files", {"a", "--version"}}}), "");
}

TEST(UserTools, NulBytesAndObjectsAreRefused) {
    const UserTool t = make_tool({"echo", "{x}"}, {{"x", kStr}});
    EXPECT_EQ(expand_error(t, {{"x", std::string("a\0b", 3)}}), "argument 'x' contains a NUL byte");
    EXPECT_NE(expand_error(t, {{"x", {{"k", "v"}}}}), "");
}

TEST(UserTools, OptionalArgumentsDropTheirElement) {
    const UserTool t = make_tool({"fmt", "--width={w}", "{file}"}, {{"w", {{"type", "integer"}}}, {"file", kStr}});
    EXPECT_EQ(expand_user_tool(t, {{"file", "a"}}).argv, (std::vector<std::string>{"fmt", "a"}));
    EXPECT_EQ(expand_user_tool(t, {{"file", "a"}, {"w", 40}}).argv,
              (std::vector<std::string>{"fmt", "--width=40", "a"}));
}

TEST(UserTools, StdinTemplate) {
    const UserTool t = make_tool({"wc", "-w"}, {{"text", kStr}}, {{"stdin", "{text}\n"}});
    EXPECT_EQ(expand_user_tool(t, {{"text", "a b; c"}}).stdin_data, "a b; c\n");
}

}  // namespace
}  // namespace qnext::tools
