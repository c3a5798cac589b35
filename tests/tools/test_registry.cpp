// The tool registry end to end: declarations, argument errors, python/shell/user tools run in the sandbox
// (isolated, and with the explicit "none" mode), timeouts, cancellation, concurrency and handler executors.
#include <chrono>
#include <future>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "sandbox/sandbox.h"
#include "tests/tools/temp_dir.h"
#include "tools/registry.h"

namespace qnext::tools {
namespace {

using namespace std::chrono_literals;
using ojson = nlohmann::ordered_json;
using testing::read_text;
using testing::TempDir;
using testing::write_text;

const std::string kSource = QNEXT_SOURCE_DIR;

RegistryOptions in(const std::filesystem::path& workspace) {
    RegistryOptions o;
    o.workspace = workspace;
    return o;
}

TEST(RegistryDecls, BuiltinDeclarationsAreTheFileVerbatim) {
    TempDir ws;
    ToolRegistry reg(in(ws.path()));
    reg.load_default_builtin();
    std::ifstream in(kSource + "/configs/tools/builtin.json");
    const ojson file = ojson::parse(in);
    EXPECT_EQ(reg.openai_tools().dump(), file.dump());  // same keys, same order: the demo model's prompt
    ASSERT_EQ(reg.tools().size(), 7u);
    EXPECT_EQ(reg.find("grep")->source, ToolSource::Builtin);
    EXPECT_EQ(reg.find("nope"), nullptr);
    EXPECT_THROW(reg.load_default_builtin(), std::runtime_error);  // duplicate names
}

TEST(RegistryDecls, BadFilesThrowClearErrors) {
    TempDir ws;
    ToolRegistry reg(in(ws.path()));
    write_text(ws / "bad.json", "[{\"type\": \"function\", \"function\": {\"name\": \"rm_rf\", \"parameters\": {}}}]");
    try {
        reg.load_builtin(ws / "bad.json");
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("must be one of python"), std::string::npos) << e.what();
    }
    write_text(ws / "broken.json", "{not json");
    EXPECT_THROW(reg.load_user_tools(ws / "broken.json"), std::runtime_error);
    EXPECT_THROW(reg.load_user_tools(ws / "missing.json"), std::runtime_error);
    EXPECT_THROW(ToolRegistry(in(ws / "no-such-dir")), std::runtime_error);
}

// Runs every process test twice: in the isolated sandbox and with the explicit unsandboxed mode.
class RegistryExec : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        const bool isolated = GetParam();
        if (isolated) {
            const std::string why = sandbox::isolation_unavailable_reason();
            if (!why.empty()) GTEST_SKIP() << "sandbox isolation unavailable here: " << why;
        }
        RegistryOptions o;
        o.workspace = ws.path();
        o.sandbox_none = !isolated;
        reg = std::make_unique<ToolRegistry>(o);
        reg->load_default_builtin();
        reg->load_user_tools(kSource + "/configs/tools/user-tools.example.json");
        write_text(ws / "canary.txt", "still here\n");
        write_text(ws / "user-tools.json", R"JSON({"tools": [{
            "name": "show_args", "description": "Print the arguments as a JSON array.",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                           "required": ["a"]},
            "argv": ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", "{a}", "x{b}"]}]})JSON");
        reg->load_user_tools(ws / "user-tools.json");
    }
    ToolResult call(const std::string& name, const ojson& args, std::chrono::milliseconds t = 20s) {
        return reg->call(name, args, t);
    }
    TempDir ws;
    std::unique_ptr<ToolRegistry> reg;
};

TEST_P(RegistryExec, PythonResultsInTheDemoFormat) {
    ToolResult r = call("python", {{"code", "print(6 * 7)"}});
    EXPECT_FALSE(r.is_error) << r.text;
    EXPECT_EQ(r.text, "42");
    EXPECT_EQ(r.detail["exit_code"], 0);
    r = call("python", {{"code", "import sys; print('out'); sys.exit(3)"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "out\nexit code: 3");
    r = call("python", {{"code", "1/0"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text.rfind("stderr:\nTraceback (most recent call last):", 0), 0u) << r.text;
    EXPECT_NE(r.text.find("ZeroDivisionError: division by zero\nexit code: 1"), std::string::npos) << r.text;
    EXPECT_EQ(call("python", {{"code", "pass"}}).text, "(no output)");
}

// A 100,000-deep "code" argument (a hostile model through a backend that does not constrain, or an embedding
// program) overflowed the stack while the error message dumped it: now a clear error, nothing runs.
TEST_P(RegistryExec, DeeplyNestedArgumentsAreRefused) {
    ojson deep = ojson::array();
    for (int i = 0; i < 100000; ++i) deep = ojson::array({std::move(deep)});
    ToolResult r = call("python", {{"code", std::move(deep)}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: arguments for python nest deeper than 256 levels");
    r = call("python", {{"code", "print(1)"}, {"x", ojson::array({ojson::array({1})})}});
    EXPECT_TRUE(r.is_error);   // an unknown property, reported by the schema check (depth is fine)
    EXPECT_EQ(r.text.find("nest deeper"), std::string::npos) << r.text;
}

TEST_P(RegistryExec, ShellRunsInTheWorkspace) {
    ToolResult r = call("shell", {{"command", "cat canary.txt; echo oops >&2; echo made > new.txt"}});
    EXPECT_FALSE(r.is_error) << r.text;
    EXPECT_EQ(r.text, "still here\nstderr:\noops");
    EXPECT_EQ(read_text(ws / "new.txt"), "made\n");  // written through the workspace mount
    EXPECT_EQ(call("read_file", {{"path", "new.txt"}}).text, "made\n");
}

TEST_P(RegistryExec, TimeoutStopsTheProcess) {
    const auto t0 = std::chrono::steady_clock::now();
    ToolResult r = call("shell", {{"command", "echo started; while :; do :; done"}}, 3000ms);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(r.timed_out);
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: timed out after 3 s\nstarted");  // with the output produced before the timeout
    EXPECT_GE(s, 2.9);
    EXPECT_LT(s, 10.0);
}

TEST_P(RegistryExec, CancelIsPromptAndParallelCallsComplete) {
    std::promise<ToolResult> slow_p, fast_p;
    const CallId slow = reg->async_call("shell", {{"command", "sleep 30"}}, 60s,
                                        [&](ToolResult r) { slow_p.set_value(std::move(r)); });
    reg->async_call("python", {{"code", "print('fast')"}}, 20s, [&](ToolResult r) { fast_p.set_value(std::move(r)); });
    EXPECT_EQ(fast_p.get_future().get().text, "fast");
    const auto t0 = std::chrono::steady_clock::now();
    reg->cancel(slow);
    auto fut = slow_p.get_future();
    ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
    const ToolResult r = fut.get();
    EXPECT_TRUE(r.cancelled);
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: cancelled");
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
    reg->cancel(slow);  // a second cancel is a no-op
}

TEST_P(RegistryExec, UserToolArgumentsCannotInjectShellSyntax) {
    for (const std::string evil : {"; rm -rf canary.txt", "$(rm canary.txt)", "`rm canary.txt`",
                                   "x\nrm canary.txt", "a' ; rm canary.txt ; '", "&& rm canary.txt", "*"}) {
        const ToolResult r = call("show_args", {{"a", evil}, {"b", evil}});
        EXPECT_FALSE(r.is_error) << evil << ": " << r.text;
        // The program received exactly two arguments holding exactly the given text.
        EXPECT_EQ(ojson::parse(r.text), ojson::array({evil, "x" + evil})) << evil;
        EXPECT_EQ(read_text(ws / "canary.txt"), "still here\n") << evil;
    }
    ToolResult r = call("show_args", {{"a", "--version"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: invalid arguments for show_args: argument 'a' must not start with '-' (it would be "
                      "read as an option)");
    r = call("show_args", {{"a", "-c"}, {"b", "-rf"}});
    EXPECT_TRUE(r.is_error) << "a leading dash must be refused before anything runs";
}

TEST_P(RegistryExec, ExampleUserToolsWork) {
    write_text(ws / "words.txt", "one two three\nfour\n");
    EXPECT_EQ(call("word_count", {{"path", "words.txt"}}).text, " 2  4 19 words.txt");
    EXPECT_EQ(call("sort_lines", {{"text", "10\n9\n100"}, {"numeric", true}}).text, "9\n10\n100");
    EXPECT_EQ(call("sort_lines", {{"text", "b\na\nc"}, {"reverse", true}}).text, "c\nb\na");
    ToolResult r = call("word_count", {{"path", "missing.txt"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "stderr:\nwc: missing.txt: No such file or directory\nexit code: 1");
}

TEST_P(RegistryExec, ErrorsAreResultsNeverExceptions) {
    ToolResult r = call("no_such_tool", ojson::object());
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text.rfind("error: unknown tool: no_such_tool (available: python, shell, read_file", 0), 0u) << r.text;
    r = call("read_file", {{"path", 3}});
    EXPECT_EQ(r.text, "error: invalid arguments for read_file: arguments.path: expected string, got integer");
    r = call("python", ojson::array());
    EXPECT_EQ(r.text, "error: arguments for python must be a JSON object");
    r = call("python", {{"code", "print(1)"}, {"timeout", 5}});
    EXPECT_EQ(r.text, "error: invalid arguments for python: arguments: unknown property 'timeout'");
}

TEST_P(RegistryExec, HandlersRunOnTheGivenExecutor) {
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    std::thread::id handler_thread;
    ToolResult got;
    reg->async_call("python", {{"code", "print('hi')"}}, 20s, io.get_executor(), [&](ToolResult r) {
        handler_thread = std::this_thread::get_id();
        got = std::move(r);
        guard.reset();
    });
    io.run();  // returns once the handler ran here
    EXPECT_EQ(handler_thread, std::this_thread::get_id());
    EXPECT_EQ(got.text, "hi");
    EXPECT_GT(got.wall_ms, 0.0);
}

TEST_P(RegistryExec, OutputIsCappedForTheModel) {
    ToolResult r = call("python", {{"code", "print('x' * 200000)"}});
    EXPECT_LE(r.text.size(), reg->options().max_text_bytes);
    EXPECT_NE(r.text.find("bytes omitted"), std::string::npos);
}

TEST_P(RegistryExec, CallsAfterShutdownFailFast) {
    reg->shutdown();
    ToolResult r = call("python", {{"code", "print(1)"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: the tool registry is shut down");
}

INSTANTIATE_TEST_SUITE_P(Sandbox, RegistryExec, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? std::string("Isolated") : std::string("None"); });

}  // namespace
}  // namespace qnext::tools
