// MCP client lifecycle against a real server built with the official Python SDK (tests/reference/mcp_server.py)
// and a deliberately broken one (tests/reference/mcp_broken_server.py): handshake, paging, schemas kept
// verbatim, isError, timeout -> notifications/cancelled, cancel, crash -> one restart -> errors, hangs, bad JSON,
// protocol version mismatch, server-to-client ping, shutdown escalation, and sandbox confinement.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "sandbox/sandbox.h"
#include "tests/tools/temp_dir.h"
#include "tools/mcp_client.h"
#include "tools/registry.h"

namespace qnext::tools {
namespace {

using namespace std::chrono_literals;
using ojson = nlohmann::ordered_json;
using testing::read_text;
using testing::TempDir;
using testing::write_text;

const std::string kSource = QNEXT_SOURCE_DIR;
const std::string kMcpPython = QNEXT_MCP_PYTHON;          // interpreter with the `mcp` SDK, "" if none
const std::string kMcpPythonPaths = QNEXT_MCP_PYTHON_PATHS;  // ':'-separated dirs it needs (read-only)

bool isolation_available() {
    static const bool ok = sandbox::isolation_unavailable_reason().empty();
    return ok;
}

// The SDK server runs in the sandbox when its Python installation can be bind-mounted there, which needs every
// ancestor directory to be searchable by other users (a pyenv under /root is not); otherwise it runs with the
// explicit "none" policy and the sandboxed MCP path is covered by BrokenServer.RunsInsideItsSandboxPolicy.
bool sdk_python_reachable_in_sandbox() {
    if (!isolation_available() || kMcpPythonPaths.empty()) return false;
    const std::string paths = kMcpPythonPaths + ":";
    for (std::size_t i = 0, j; (j = paths.find(':', i)) != std::string::npos; i = j + 1) {
        for (std::filesystem::path p = paths.substr(i, j - i); !p.empty() && p != p.root_path(); p = p.parent_path()) {
            struct stat st {};
            if (::stat(p.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
        }
    }
    return true;
}

bool sdk_in_sandbox() {
    static const bool ok = [] {
        const bool yes = sdk_python_reachable_in_sandbox();
        if (!yes) std::printf("note: the SDK server runs with policy \"none\" (its Python is not reachable in a sandbox)\n");
        return yes;
    }();
    return ok;
}

// Polls for a file that a server writes asynchronously.
bool wait_for_file(const std::filesystem::path& p, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (std::filesystem::exists(p)) return true;
        std::this_thread::sleep_for(20ms);
    }
    return std::filesystem::exists(p);
}

// A workspace with copies of the test servers, an MCP config, and a registry that loads it.
class McpEnv {
public:
    explicit McpEnv(bool isolated, std::chrono::milliseconds start_timeout = 60s) : isolated_(isolated) {
        std::filesystem::copy_file(kSource + "/tests/reference/mcp_server.py", ws_ / "mcp_server.py");
        std::filesystem::copy_file(kSource + "/tests/reference/mcp_broken_server.py", ws_ / "mcp_broken_server.py");
        RegistryOptions o;
        o.workspace = ws_.path();
        o.mcp_start_timeout = start_timeout;
        reg_ = std::make_unique<ToolRegistry>(o);
    }
    // The workspace as the server sees it.
    std::string inside() const { return isolated_ ? "/workspace" : ws_.path().string(); }
    std::string policy() const { return isolated_ ? "" : "none"; }

    ojson broken(const std::string& mode) const {
        ojson s = {{"command", "/usr/bin/python3"}, {"args", {inside() + "/mcp_broken_server.py", mode, inside()}}};
        if (!policy().empty()) s["policy"] = policy();
        return s;
    }
    ojson sdk() const {
        ojson s = {{"command", kMcpPython}, {"args", {inside() + "/mcp_server.py", inside()}}};
        if (isolated_) {  // the default policy plus read-only access to the SDK's Python installation
            sandbox::Policy p = sandbox::default_policy();
            std::string paths = kMcpPythonPaths;
            for (std::size_t i = 0; i < paths.size();) {
                std::size_t j = paths.find(':', i);
                if (j == std::string::npos) j = paths.size();
                if (j > i) p.ro_paths.push_back(paths.substr(i, j - i));
                i = j + 1;
            }
            write_text(ws_ / "sdk-policy.json", p.to_json().dump(2));
            s["policy"] = (ws_ / "sdk-policy.json").string();
        } else {
            s["policy"] = "none";
        }
        return s;
    }
    std::vector<std::string> load(const ojson& servers) {
        write_text(ws_ / "mcp.json", ojson{{"mcpServers", servers}}.dump(2));
        return reg_->load_mcp_config(ws_ / "mcp.json");
    }
    ToolRegistry& reg() { return *reg_; }
    const TempDir& ws() const { return ws_; }

private:
    bool isolated_;
    TempDir ws_;
    std::unique_ptr<ToolRegistry> reg_;
};

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + "\n";
    return s;
}

// ---- the real SDK server ------------------------------------------------------------------------------------

// Each ctest case runs in its own process, so every case below starts the SDK server once (a few seconds of
// Python imports); the cases are few and each covers several steps of the lifecycle.
#define SKIP_WITHOUT_SDK()                                                                                   \
    if (kMcpPython.empty())                                                                                  \
    GTEST_SKIP() << "the mcp Python SDK is not installed (pip install -r tests/reference/requirements.txt)"

TEST(SdkServer, ListsEveryPageAndCalls) {
    SKIP_WITHOUT_SDK();
    McpEnv env(sdk_in_sandbox());
    const auto errors = env.load({{"ref", env.sdk()}});
    ASSERT_TRUE(errors.empty()) << joined(errors);
    ToolRegistry& reg = env.reg();

    // tools/list followed every nextCursor: 4 pages of 4 + 4 + 4 + 2.
    ASSERT_EQ(reg.tools().size(), 14u);
    EXPECT_EQ(reg.tools().front().name, "ref_add");
    EXPECT_EQ(reg.tools().back().name, "ref_filler_4");
    EXPECT_TRUE(std::filesystem::exists(env.ws() / "mcp_server.py"));

    // The input schema is kept whole: $defs, $ref and additionalProperties reach the model.
    const ToolDecl* book = reg.find("ref_book_flight");
    ASSERT_NE(book, nullptr);
    EXPECT_EQ(book->source, ToolSource::Mcp);
    EXPECT_EQ(book->server, "ref");
    EXPECT_EQ(book->remote_name, "book_flight");
    const ojson expected = ojson::parse(R"({
        "type": "object",
        "$defs": {"airport": {"type": "string", "pattern": "^[A-Z]{3}$"},
                  "passenger": {"type": "object", "properties": {"name": {"type": "string"},
                                                                  "age": {"type": "integer", "minimum": 0}},
                                "required": ["name"], "additionalProperties": false}},
        "properties": {"from": {"$ref": "#/$defs/airport"}, "to": {"$ref": "#/$defs/airport"},
                       "passengers": {"type": "array", "items": {"$ref": "#/$defs/passenger"}, "minItems": 1}},
        "required": ["from", "to", "passengers"],
        "additionalProperties": false})");
    // Same content (the key order is the server's, kept as it was sent).
    EXPECT_EQ(nlohmann::json::parse(book->parameters.dump()), nlohmann::json::parse(expected.dump()))
        << book->parameters.dump();
    EXPECT_EQ(book->to_openai()["function"]["parameters"].dump(), book->parameters.dump());

    // tools/call: text, isError, non-text blocks, server-side argument errors.
    ToolResult r = reg.call("ref_add", {{"a", 2}, {"b", 40}}, 20s);
    EXPECT_FALSE(r.is_error) << r.text;
    EXPECT_EQ(r.text, "42");
    EXPECT_EQ(reg.call("ref_echo", {{"text", "héllo\nworld"}}, 20s).text, "héllo\nworld");
    r = reg.call("ref_fail", {{"message", "disk on fire"}}, 20s);
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: disk on fire");  // isError goes to the model as an error result
    r = reg.call("ref_structured", ojson::object(), 20s);
    EXPECT_EQ(r.text, "[image: image/png, 8 bytes]");  // 12 base64 characters with one '=' of padding
    EXPECT_EQ(r.detail["structuredContent"], (ojson{{"temperature", 21.5}, {"unit", "C"}}));
    EXPECT_TRUE(reg.call("ref_add", {{"a", "two"}}, 20s).is_error);

    // Parallel calls on one connection all complete with their own results.
    std::vector<std::promise<ToolResult>> ps(6);
    for (int i = 0; i < 6; ++i)
        reg.async_call("ref_add", {{"a", i}, {"b", 100}}, 30s,
                       [&ps, i](ToolResult res) { ps[static_cast<std::size_t>(i)].set_value(std::move(res)); });
    for (int i = 0; i < 6; ++i) EXPECT_EQ(ps[static_cast<std::size_t>(i)].get_future().get().text, std::to_string(100 + i));
}

TEST(SdkServer, TimeoutAndCancelReachTheServerThenShutdownIsClean) {
    SKIP_WITHOUT_SDK();
    McpEnv env(sdk_in_sandbox());
    const auto errors = env.load({{"ref", env.sdk()}});
    ASSERT_TRUE(errors.empty()) << joined(errors);
    ToolRegistry& reg = env.reg();

    // A timeout completes the call and sends notifications/cancelled; the SDK cancels the handler, which
    // leaves a marker file.
    const auto t0 = std::chrono::steady_clock::now();
    ToolResult r = reg.call("ref_sleep", {{"seconds", 60}}, 1500ms);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.text, "error: timed out after 1.5 s");
    EXPECT_TRUE(wait_for_file(env.ws() / "cancelled", 20s));
    std::filesystem::remove(env.ws() / "cancelled");
    EXPECT_EQ(reg.call("ref_add", {{"a", 1}, {"b", 1}}, 20s).text, "2");  // still usable

    // cancel() does the same on demand.
    std::promise<ToolResult> p;
    const CallId id = reg.async_call("ref_sleep", {{"seconds", 60}}, 60s, [&](ToolResult res) { p.set_value(std::move(res)); });
    std::this_thread::sleep_for(500ms);
    reg.cancel(id);
    auto fut = p.get_future();
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(fut.get().cancelled);
    EXPECT_TRUE(wait_for_file(env.ws() / "cancelled", 20s));

    // Shutdown closes stdin first; the SDK server then returns from its main loop and leaves a marker (a signal
    // would have killed it before that).
    reg.shutdown();
    EXPECT_TRUE(std::filesystem::exists(env.ws() / "clean_exit"));
}

TEST(SdkServer, CrashIsRestartedOnceThenItsToolsReportErrors) {
    SKIP_WITHOUT_SDK();
    McpEnv env(sdk_in_sandbox());
    const auto errors = env.load({{"ref", env.sdk()}});
    ASSERT_TRUE(errors.empty()) << joined(errors);
    ToolRegistry& reg = env.reg();
    const std::string first = reg.call("ref_instance", ojson::object(), 20s).text;
    ToolResult r = reg.call("ref_crash", {{"code", 3}}, 20s);
    EXPECT_TRUE(r.is_error);
    EXPECT_NE(r.text.find("MCP server 'ref' exited with code 3"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("crashing on purpose"), std::string::npos) << r.text;  // its last stderr line
    const ToolResult second = reg.call("ref_instance", ojson::object(), 60s);  // restarted transparently
    EXPECT_FALSE(second.is_error) << second.text;
    EXPECT_NE(second.text, first);
    EXPECT_TRUE(reg.call("ref_crash", {{"code", 4}}, 20s).is_error);
    r = reg.call("ref_echo", {{"text", "hi"}}, 20s);  // no second restart
    EXPECT_TRUE(r.is_error);
    EXPECT_NE(r.text.find("MCP server 'ref' is not available"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("already restarted once"), std::string::npos) << r.text;
}

// ---- the broken server --------------------------------------------------------------------------------------

TEST(BrokenServer, GoodModePagesAndWorks) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"b", env.broken("good")}})), "");
    ASSERT_EQ(env.reg().tools().size(), 3u);  // 3 pages of 1
    EXPECT_EQ(env.reg().call("b_echo", {{"text", "hi"}}, 10s).text, "hi");
    EXPECT_TRUE(std::filesystem::exists(env.ws() / "initialized"));  // notifications/initialized was sent
}

TEST(BrokenServer, BadJsonIsSkippedAndTheCallTimesOutWithTheEvidence) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"b", env.broken("badjson")}})), "");
    ToolResult r = env.reg().call("b_echo", {{"text", "hi"}}, 1000ms);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.text, "error: timed out after 1 s\nerror: the server wrote output that is not JSON-RPC: "
                      "{this is not json");
}

TEST(BrokenServer, BannerOnStdoutIsTolerated) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"b", env.broken("garbage_banner")}})), "");
    EXPECT_EQ(env.reg().call("b_echo", {{"text", "ok"}}, 10s).text, "ok");
}

TEST(BrokenServer, CrashDuringInitializeIsReportedAndOthersStillLoad) {
    McpEnv env(false);
    const auto errors = env.load({{"bad", env.broken("crash_init")}, {"good", env.broken("good")}});
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("MCP server 'bad' failed to start"), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("exited with code 3"), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("fatal: cannot initialize"), std::string::npos) << errors[0];
    EXPECT_EQ(env.reg().find("bad_echo"), nullptr);
    EXPECT_EQ(env.reg().call("good_echo", {{"text", "still fine"}}, 10s).text, "still fine");
}

TEST(BrokenServer, HangDuringInitializeTimesOut) {
    McpEnv env(false, 1500ms);
    const auto t0 = std::chrono::steady_clock::now();
    const auto errors = env.load({{"h", env.broken("hang_init")}});
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 6.0);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("no answer to initialize within 1500 ms"), std::string::npos) << errors[0];
    EXPECT_TRUE(env.reg().tools().empty());
}

TEST(BrokenServer, HangingCallTimesOutAndIsCancelledOnTheWire) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"h", env.broken("hang_call")}})), "");
    ToolResult r = env.reg().call("h_echo", {{"text", "x"}}, 800ms);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.text, "error: timed out after 0.8 s");
    // Request ids: 1 initialize, 2-4 tools/list pages, 5 this call.
    ASSERT_TRUE(wait_for_file(env.ws() / "cancelled_5", 5s));
    EXPECT_EQ(read_text(env.ws() / "cancelled_5"), "timed out\n");
}

TEST(BrokenServer, CrashOnCallRestartsExactlyOnce) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"c", env.broken("crash_call")}})), "");
    ToolResult r = env.reg().call("c_echo", {{"text", "x"}}, 10s);
    EXPECT_EQ(r.text, "error: MCP server 'c' exited with code 7; last stderr line: segfault (pretend)");
    r = env.reg().call("c_echo", {{"text", "x"}}, 10s);  // restart, then the same crash
    EXPECT_EQ(r.text, "error: MCP server 'c' exited with code 7; last stderr line: segfault (pretend)");
    r = env.reg().call("c_echo", {{"text", "x"}}, 10s);
    EXPECT_EQ(r.text, "error: MCP server 'c' is not available (exited with code 7; last stderr line: segfault "
                      "(pretend)); it was already restarted once");
    EXPECT_EQ(read_text(env.ws() / "starts"), "start\nstart\n");
}

TEST(BrokenServer, ProtocolVersionMismatchIsRefused) {
    McpEnv env(false);
    const auto errors = env.load({{"old", env.broken("old_version")}});
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("it speaks MCP protocol version \"1999-01-01\"; qnext speaks 2025-06-18"),
              std::string::npos) << errors[0];
}

TEST(BrokenServer, AnswersServerPingDuringACall) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"p", env.broken("ping_first")}})), "");
    EXPECT_EQ(env.reg().call("p_echo", {{"text", "pong"}}, 10s).text, "pong");
}

TEST(BrokenServer, ServerWithoutToolsLoadsEmpty) {
    McpEnv env(false);
    EXPECT_TRUE(env.load({{"n", env.broken("no_tools")}}).empty());
    EXPECT_TRUE(env.reg().tools().empty());
}

TEST(BrokenServer, ShutdownEscalatesToSigkill) {
    McpEnv env(false);
    ASSERT_EQ(joined(env.load({{"s", env.broken("ignore_term")}})), "");
    const auto t0 = std::chrono::steady_clock::now();
    env.reg().shutdown();  // stdin closed (ignored), SIGTERM (ignored), then SIGKILL
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(std::filesystem::exists(env.ws() / "stdin_closed"));  // step 1 happened
    EXPECT_GE(s, 3.5);  // two 2 s grace periods
    EXPECT_LT(s, 8.0);
}

TEST(BrokenServer, RunsInsideItsSandboxPolicy) {
    if (!isolation_available()) GTEST_SKIP() << sandbox::isolation_unavailable_reason();
    McpEnv env(true);
    ASSERT_EQ(joined(env.load({{"b", env.broken("good")}})), "") << "the stdlib server must run in the default policy";
    EXPECT_EQ(env.reg().call("b_probe", {{"path", "/workspace/mcp_broken_server.py"}}, 10s).text, "True");
    EXPECT_EQ(env.reg().call("b_probe", {{"path", kSource}}, 10s).text, "False");  // the project is hidden
    EXPECT_EQ(env.reg().call("b_probe", {{"path", "/root"}}, 10s).text, "False");
    McpEnv host(false);  // the same probe without a sandbox does see the project
    ASSERT_EQ(joined(host.load({{"b", host.broken("good")}})), "");
    EXPECT_EQ(host.reg().call("b_probe", {{"path", kSource}}, 10s).text, "True");
}

TEST(McpConfig, RejectsWhatItCannotRun) {
    auto err = [](const char* json) {
        try {
            parse_mcp_config(ojson::parse(json), "mcp.json");
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(err(R"({"servers": {}})"), "mcp.json: expected {\"mcpServers\": {name: {\"command\": ...}}}");
    EXPECT_EQ(err(R"({"mcpServers": {"x": {"url": "http://x"}}})"),
              "mcp.json: mcpServers.x: only stdio servers (\"command\") are supported");
    EXPECT_EQ(err(R"({"mcpServers": {"x": {"args": []}}})"), "mcp.json: mcpServers.x: \"command\" must be a non-empty string");
    EXPECT_NE(err(R"({"mcpServers": {"x": {"command": "a", "cwd": "/"}}})").find("unknown key \"cwd\""), std::string::npos);
    EXPECT_NE(err(R"({"mcpServers": {"bad name": {"command": "a"}}})").find("server names"), std::string::npos);
    EXPECT_NE(err(R"({"mcpServers": {"x": {"command": "a", "env": {"K": 1}}}})").find("env.K"), std::string::npos);
    const auto ok = parse_mcp_config(ojson::parse(R"({"mcpServers": {"t": {"command": "uvx", "args": ["a", "b"],
        "env": {"K": "V"}, "policy": "none", "timeout_s": 5, "disabled": true}}})"), "mcp.json");
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].argv, (std::vector<std::string>{"uvx", "a", "b"}));
    EXPECT_EQ(ok[0].env.at("K"), "V");
    EXPECT_EQ(ok[0].policy, "none");
    EXPECT_TRUE(ok[0].disabled);
    const auto example = parse_mcp_config(ojson::parse(std::ifstream(kSource + "/configs/tools/mcp.example.json")),
                                          "mcp.example.json");
    EXPECT_EQ(example.size(), 2u);
}

TEST(McpResult, RendersContentBlocks) {
    ToolResult r = mcp_result_to_tool_result(ojson::parse(R"({"content": [
        {"type": "text", "text": "line 1"},
        {"type": "resource_link", "uri": "file:///a.txt", "name": "a"},
        {"type": "resource", "resource": {"uri": "file:///b.txt", "text": "inline"}},
        {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"}]})"));
    EXPECT_FALSE(r.is_error);
    EXPECT_EQ(r.text, "line 1\n[resource link: file:///a.txt (a)]\ninline\n[audio: audio/wav, 3 bytes]");
    EXPECT_EQ(mcp_result_to_tool_result(ojson::parse(R"({"content": []})")).text, "(no output)");
    EXPECT_EQ(mcp_result_to_tool_result(ojson::parse(R"({"content": [], "isError": true})")).text,
              "error: the tool reported an error without a message");
    EXPECT_EQ(mcp_result_to_tool_result(ojson::parse(R"({"content": [], "structuredContent": {"a": 1}})")).text,
              "{\"a\":1}");
}

}  // namespace
}  // namespace qnext::tools
