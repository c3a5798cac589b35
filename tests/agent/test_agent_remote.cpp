// The agent loop driven by the remote (OpenAI-compatible) backend against a scripted server on loopback, with
// the real tool registry and sandbox: parallel calls, timeouts, crashes, truncation, HTTP errors, cancellation.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/agent_loop.h"
#include "agent/openai_backend.h"
#include "agent/registry_executor.h"
#include "agent/runtime.h"
#include "tests/agent/stub_openai_server.h"
#include "tools/registry.h"

namespace qnext::agent {
namespace {

namespace fs = std::filesystem;
using test::StubOpenAIServer;
using test::StubReply;
using Clock = std::chrono::steady_clock;

TEST(SseDecoder, SplitsEventsAcrossArbitraryChunks) {
    std::string stream = "data: {\"a\":1}\n\n: comment\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";
    for (size_t cut = 1; cut < stream.size(); ++cut) {
        SseDecoder d;
        std::vector<std::string> got;
        auto f = [&](const std::string& s) { got.push_back(s); };
        d.feed(std::string_view(stream).substr(0, cut), f);
        d.feed(std::string_view(stream).substr(cut), f);
        ASSERT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "line1\nline2", "[DONE]"})) << "cut at " << cut;
    }
}

// On the wire, an assistant message's function.arguments is always a string holding JSON (OpenAI API), whether
// the loop's history holds it parsed (valid calls) or as text (malformed ones).
TEST(OpenAIWire, ToolCallArgumentsAreAlwaysJsonStrings) {
    boost::asio::io_context io;
    OpenAIBackend b(io, "http://127.0.0.1:9/v1", "m", "", {});
    GenerationRequest r;
    r.messages = ojson::array(
        {ojson{{"role", "user"}, {"content", "q"}},
         ojson{{"role", "assistant"}, {"content", ""},
               {"tool_calls", ojson::array({ojson{{"id", "c0"}, {"type", "function"},
                                                  {"function", {{"name", "f"}, {"arguments", {{"x", 1}, {"y", "z"}}}}}},
                                            ojson{{"id", "c1"}, {"type", "function"},
                                                  {"function", {{"name", "g"}, {"arguments", "{not json"}}}}})}},
         ojson{{"role", "tool"}, {"tool_call_id", "c0"}, {"content", "ok"}}});
    r.tools = ojson::array({ojson{{"type", "function"},
                                  {"function", {{"name", "f"}, {"description", "d"},
                                                {"parameters", {{"type", "object"}, {"properties", {{"x", {{"type", "integer"}}}}}}}}}}});
    r.max_tokens = 64;
    const ojson body = b.make_body(r);
    // The body, validated against the `openai` package's request types by tests/reference/check_openai_wire.py,
    // is committed: any change to the wire format must be validated again (QNEXT_WIRE_BODY_OUT=file writes it).
    if (const char* out = std::getenv("QNEXT_WIRE_BODY_OUT")) std::ofstream(out) << body.dump(2) << "\n";
    std::ifstream golden(std::string(QNEXT_SOURCE_DIR) + "/tests/data/agent/openai_wire_body.json");
    ASSERT_TRUE(golden.good());
    EXPECT_EQ(body, ojson::parse(golden)) << body.dump(2);
    const auto& calls = body["messages"][1]["tool_calls"];
    ASSERT_EQ(calls.size(), 2u);
    ASSERT_TRUE(calls[0]["function"]["arguments"].is_string());
    EXPECT_EQ(ojson::parse(calls[0]["function"]["arguments"].get<std::string>()), (ojson{{"x", 1}, {"y", "z"}}));
    EXPECT_EQ(calls[1]["function"]["arguments"], "{not json");
    EXPECT_TRUE(r.messages[1]["tool_calls"][0]["function"]["arguments"].is_object());   // the history is unchanged
}

TEST(HttpUrl, ParsesAndRejects) {
    auto u = parse_http_url("http://127.0.0.1:8000/v1/");
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, "8000");
    EXPECT_EQ(u.path_prefix, "/v1");
    EXPECT_EQ(parse_http_url("http://example").port, "80");
    EXPECT_THROW(parse_http_url("https://x/v1"), std::runtime_error);
    EXPECT_THROW(parse_http_url("ftp://x"), std::runtime_error);
    EXPECT_THROW(parse_http_url("http://x:80a/"), std::runtime_error);
}

class RemoteLoop : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = make_temp_dir("qnext-agent-test");
        fs::create_directories(dir_ / "ws");
        std::ofstream(dir_ / "tools.json") << R"({"tools": [
          {"name": "nap", "description": "sleep one second", "parameters": {"type": "object", "properties": {}},
           "argv": ["/bin/sleep", "1"]},
          {"name": "hang", "description": "never returns", "parameters": {"type": "object", "properties": {}},
           "argv": ["/bin/sleep", "30"]},
          {"name": "snooze", "description": "sleep 0.3 s", "parameters": {"type": "object", "properties": {}},
           "argv": ["/bin/sleep", "0.3"]},
          {"name": "crash", "description": "dies of SIGSEGV", "parameters": {"type": "object", "properties": {}},
           "argv": ["/bin/sh", "-c", "kill -SEGV $$"]},
          {"name": "say", "description": "echo a word", "parameters": {"type": "object",
             "properties": {"word": {"type": "string"}}, "required": ["word"]}, "argv": ["/bin/echo", "{word}"]}
        ]})";
        tools::RegistryOptions ro;
        ro.workspace = dir_ / "ws";
        registry_ = std::make_unique<tools::ToolRegistry>(ro);
        registry_->load_user_tools(dir_ / "tools.json");
    }
    void TearDown() override {
        registry_.reset();
        fs::remove_all(dir_);
    }

    // Runs one user turn to completion.
    TurnOutcome run_turn(AgentLoop& loop, const std::string& msg, std::vector<LoopEvent::Kind>* kinds = nullptr,
                         std::function<void(const LoopEvent&)> extra = {}) {
        return loop.run_user_turn(msg, [&](const LoopEvent& ev) {
            if (kinds) kinds->push_back(ev.kind);
            if (extra) extra(ev);
        });
    }

    boost::asio::io_context io_;
    fs::path dir_;
    std::unique_ptr<tools::ToolRegistry> registry_;
};

// Step 1: the server asks for the given calls; step 2: it answers with the tool results it received.
StubOpenAIServer::Script calls_then_answer(std::vector<std::pair<std::string, std::string>> calls) {
    return [calls](const nlohmann::ordered_json& req) {
        StubReply r;
        const auto& msgs = req["messages"];
        if (msgs.back()["role"] == "tool") {
            std::string seen;
            for (const auto& m : msgs)
                if (m["role"] == "tool") seen += "[" + m["content"].get<std::string>() + "]";
            r.events = {StubOpenAIServer::text("results: " + seen), StubOpenAIServer::finish("stop")};
            return r;
        }
        for (size_t i = 0; i < calls.size(); ++i) {
            r.events.push_back(StubOpenAIServer::call_start(int(i), "c" + std::to_string(i), calls[i].first));
            r.events.push_back(StubOpenAIServer::call_args(int(i), calls[i].second));
        }
        r.events.push_back(StubOpenAIServer::finish("tool_calls"));
        return r;
    };
}

TEST_F(RemoteLoop, ParallelCallsRunConcurrently) {
    StubOpenAIServer server(calls_then_answer({{"nap", "{}"}, {"nap", "{}"}, {"say", R"({"word": "hi; rm -rf /"})"}}));
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, LoopOptions{});
    auto t0 = Clock::now();
    TurnOutcome out = run_turn(*loop, "nap twice");
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_EQ(out.stop, StopReason::FinalAnswer) << out.error;
    EXPECT_EQ(out.steps, 2);
    EXPECT_LT(secs, 1.8) << "two 1 s naps must overlap";
    EXPECT_GE(secs, 0.95);
    EXPECT_EQ(out.final_answer, "results: [(no output)][(no output)][hi; rm -rf /]");
    // History: user, assistant with 3 calls, 3 tool messages in call order, final assistant.
    const ojson& m = loop->messages();
    ASSERT_EQ(m.size(), 6u);
    EXPECT_EQ(m[1]["tool_calls"].size(), 3u);
    EXPECT_EQ(m[1]["tool_calls"][2]["function"]["arguments"]["word"], "hi; rm -rf /");
    EXPECT_EQ(m[4]["tool_call_id"], "c2");
    // The request carried the tools and the parallel flag.
    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0]["tools"].size(), 5u);
    EXPECT_EQ(reqs[0]["stream"], true);
}

TEST_F(RemoteLoop, HangingToolTimesOutAndCrashingToolReportsError) {
    StubOpenAIServer server(calls_then_answer({{"hang", "{}"}, {"crash", "{}"}}));
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    LoopOptions opts;
    opts.limits.tool_timeout = std::chrono::milliseconds(500);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, opts);
    std::vector<ToolOutcome> outcomes;
    auto t0 = Clock::now();
    TurnOutcome out = run_turn(*loop, "go", nullptr, [&](const LoopEvent& ev) {
        if (ev.kind == LoopEvent::Kind::ToolResult) outcomes.push_back(*ev.outcome);
    });
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ASSERT_EQ(out.stop, StopReason::FinalAnswer) << out.error;
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_TRUE(outcomes[0].is_error && outcomes[1].is_error);
    EXPECT_LT(secs, 5.0);
    // Both errors reach the model as text.
    EXPECT_NE(loop->messages()[2]["content"].get<std::string>().find("time"), std::string::npos)
        << loop->messages()[2]["content"];
    EXPECT_FALSE(loop->messages()[3]["content"].get<std::string>().empty());
}

TEST_F(RemoteLoop, TruncatedCallIsNeverExecuted) {
    StubOpenAIServer server([](const nlohmann::ordered_json&) {
        StubReply r;
        r.events = {StubOpenAIServer::call_start(0, "c0", "say"), StubOpenAIServer::call_args(0, "{\"word\": \"unfin"),
                    StubOpenAIServer::finish("length")};
        return r;
    });
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, LoopOptions{});
    std::vector<LoopEvent::Kind> kinds;
    TurnOutcome out = run_turn(*loop, "go", &kinds);
    EXPECT_EQ(out.stop, StopReason::Length);
    EXPECT_TRUE(out.tools_called.empty());
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), LoopEvent::Kind::ToolCallStarted), 0);
    // reported, not dropped silently: the user learns which call was cut off
    EXPECT_NE(out.error.find("tool call 'say' was cut off by the token limit"), std::string::npos) << out.error;
}

TEST_F(RemoteLoop, MaxStepsStopsAForcedLoop) {
    StubOpenAIServer server([](const nlohmann::ordered_json&) {
        StubReply r;
        r.events = {StubOpenAIServer::call_start(0, "c", "say"), StubOpenAIServer::call_args(0, R"({"word": "again"})"),
                    StubOpenAIServer::finish("tool_calls")};
        return r;
    });
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    LoopOptions opts;
    opts.limits.max_steps = 3;
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, opts);
    TurnOutcome out = run_turn(*loop, "go");
    EXPECT_EQ(out.stop, StopReason::MaxSteps);
    EXPECT_EQ(out.steps, 3);
    EXPECT_EQ(out.tools_called.size(), 3u);
}

TEST_F(RemoteLoop, HttpErrorIsReportedWithTheServersMessage) {
    StubOpenAIServer server([](const nlohmann::ordered_json&) {
        StubReply r;
        r.status = 500;
        r.error_body = R"({"error": "model overloaded"})";
        return r;
    });
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, LoopOptions{});
    TurnOutcome out = run_turn(*loop, "go");
    EXPECT_EQ(out.stop, StopReason::Error);
    EXPECT_NE(out.error.find("HTTP 500"), std::string::npos) << out.error;
    EXPECT_NE(out.error.find("model overloaded"), std::string::npos) << out.error;
}

TEST_F(RemoteLoop, CancellationStopsTheTurnAndTheSessionStaysUsable) {
    std::atomic<int> n{0};
    StubOpenAIServer server([&](const nlohmann::ordered_json&) {
        StubReply r;
        if (n++ == 0) {
            for (int i = 0; i < 50; ++i) r.events.push_back(StubOpenAIServer::text("tick "));
            r.delay = std::chrono::milliseconds(40);
        } else {
            r.events = {StubOpenAIServer::text("fine"), StubOpenAIServer::finish("stop")};
        }
        return r;
    });
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, LoopOptions{});
    int texts = 0;
    TurnOutcome out = run_turn(*loop, "talk", nullptr, [&](const LoopEvent& ev) {
        if (ev.kind == LoopEvent::Kind::Generation && ++texts == 3) loop->cancel();
    });
    EXPECT_EQ(out.stop, StopReason::Cancelled);
    EXPECT_LT(texts, 10);
    TurnOutcome next = run_turn(*loop, "again");
    EXPECT_EQ(next.stop, StopReason::FinalAnswer) << next.error;
    EXPECT_EQ(next.final_answer, "fine");
}

// --- A hostile server (security issue item 6): wrong types, huge or deep data, silence, no SSE. ---

// Runs one turn against a server that sends `events`; returns the outcome and whether the TurnDone event came.
struct HostileRun {
    TurnOutcome out;
    bool turn_done = false;
    std::vector<ToolOutcome> results;
    ojson history;
    double secs = 0;
};

class HostileServer : public RemoteLoop {
protected:
    HostileRun run(StubOpenAIServer::Script script, RemoteOptions ro = {}, LoopOptions lo = {}) {
        StubOpenAIServer server(std::move(script));
        OpenAIBackend backend(io_, server.base_url(), "stub", "", ro);
        RegistryExecutor exec(*registry_, io_);
        auto loop = std::make_shared<AgentLoop>(io_, backend, exec, lo);
        HostileRun r;
        auto t0 = Clock::now();
        r.out = run_turn(*loop, "go", nullptr, [&](const LoopEvent& ev) {
            if (ev.kind == LoopEvent::Kind::TurnDone) r.turn_done = true;
            if (ev.kind == LoopEvent::Kind::ToolResult) r.results.push_back(*ev.outcome);
        });
        r.secs = std::chrono::duration<double>(Clock::now() - t0).count();
        r.history = loop->messages();
        return r;
    }
    HostileRun run_events(std::vector<std::string> events, RemoteOptions ro = {}) {
        return run([events](const nlohmann::ordered_json&) {
            StubReply r;
            r.events = events;
            return r;
        }, ro);
    }
};

TEST_F(HostileServer, WrongJsonTypesEndTheTurnWithAnErrorNamingTheField) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"choices":[{"delta":{"tool_calls":[{"index":"0","function":{"name":"say"}}]}}]})",
         "tool_calls[0].index that is not a non-negative integer"},
        {R"({"choices":[{"delta":{"tool_calls":["x"]}}]})", "tool_calls[0] that is not an object"},
        {R"({"choices":[],"usage":{"prompt_tokens":"many"}})",
         "usage.prompt_tokens that is not a non-negative integer"},
        {R"({"choices":[{"delta":{"content":5}}]})", "choices[0].delta.content that is not a string"},
        {R"({"choices":{"0":{}}})", "choices that is not an array"},
        {R"({"choices":["x"]})", "choices[0] that is not an object"},
        {R"({"choices":[{"delta":[]}]})", "choices[0].delta that is not an object"},
        {R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":"say"}]}}]})",
         "tool_calls[0].function that is not an object"},
        {R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"say","arguments":{}}}]}}]})",
         "tool_calls[0].function.arguments that is not a string"},
        {R"({"choices":[{"delta":{},"finish_reason":7}]})", "finish_reason that is not a string"},
        {R"({"choices":[{"delta":{"tool_calls":[{"index":-1}]}}]})", "index that is not a non-negative integer"},
        {R"({"choices":[{"delta":{"tool_calls":[{"index":5000}]}}]})", "tool call index 5000"},
        {R"([1, 2])", "the event stream that is not a JSON object"},
    };
    for (const auto& [event, expected] : cases) {
        HostileRun r = run_events({StubOpenAIServer::text("partial "), event, StubOpenAIServer::finish("stop")});
        EXPECT_EQ(r.out.stop, StopReason::Error) << event;
        EXPECT_TRUE(r.turn_done) << event;
        EXPECT_NE(r.out.error.find(expected), std::string::npos) << event << " -> " << r.out.error;
    }
}

TEST_F(HostileServer, DeeplyNestedEventIsRejectedDuringTheParse) {
    const std::string deep = StubOpenAIServer::deep_array(100000);
    HostileRun r = run_events({R"({"choices":[],"junk":)" + deep + "}"});
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_NE(r.out.error.find("nests deeper than 256"), std::string::npos) << r.out.error.substr(0, 300);
    EXPECT_LT(r.out.error.size(), 1000u);
}

TEST_F(HostileServer, DeeplyNestedArgumentsAreNotExecutedAndEchoedBounded) {
    // The model is told why, and the history keeps a bounded echo (the deep value would overflow the stack of
    // every later dump of the history).
    HostileRun r = run(calls_then_answer({{"say", StubOpenAIServer::deep_array(100000)}}));
    ASSERT_EQ(r.out.stop, StopReason::FinalAnswer) << r.out.error.substr(0, 300);
    ASSERT_EQ(r.results.size(), 1u);
    EXPECT_TRUE(r.results[0].is_error);
    EXPECT_NE(r.results[0].text.find("nests deeper than 256"), std::string::npos) << r.results[0].text.substr(0, 300);
    EXPECT_LT(r.results[0].text.size(), 4096u + 300u);
    const ojson& args = r.history[1]["tool_calls"][0]["function"]["arguments"];
    ASSERT_TRUE(args.is_string());
    EXPECT_LT(args.get<std::string>().size(), 4096u + 100u);
}

TEST_F(HostileServer, HugeMalformedArgumentsAndNamesAreEchoedTruncated) {
    const std::string junk = "{" + std::string(100000, 'x');
    const std::string long_name(100000, 'n');
    HostileRun r = run(calls_then_answer({{"say", junk}, {long_name, "{}"}}));
    ASSERT_EQ(r.out.stop, StopReason::FinalAnswer) << r.out.error.substr(0, 300);
    ASSERT_EQ(r.results.size(), 2u);
    for (const ToolOutcome& o : r.results) {
        EXPECT_TRUE(o.is_error);
        EXPECT_LT(o.text.size(), 4096u + 300u);
        EXPECT_NE(o.text.find("truncated: 100"), std::string::npos) << o.text.substr(0, 200);
    }
    const ojson& calls = r.history[1]["tool_calls"];
    EXPECT_LT(calls[0]["function"]["arguments"].get<std::string>().size(), 4096u + 100u);
    EXPECT_LT(calls[1]["function"]["name"].get<std::string>().size(), 4096u + 100u);
    EXPECT_LT(r.history[3]["name"].get<std::string>().size(), 4096u + 100u);
    EXPECT_LT(r.history.dump().size(), 30000u);
}

TEST(SseDecoder, LongLineIsDecodedInLinearTime) {
    // A 40 MB line in 16 KiB reads: rescanning the whole buffer for a newline on every read was quadratic.
    const size_t n = 40u << 20;
    std::string line = "data: " + std::string(n, 'a') + "\n\n";
    SseDecoder d(64u << 20);
    size_t got = 0;
    int events = 0;
    auto t0 = Clock::now();
    for (size_t off = 0; off < line.size(); off += 16384)
        ASSERT_TRUE(d.feed(std::string_view(line).substr(off, 16384), [&](const std::string& s) {
            got = s.size();
            ++events;
        })) << d.error();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_EQ(events, 1);
    EXPECT_EQ(got, n);
    EXPECT_LT(secs, 3.0);
}

TEST(SseDecoder, LineOrEventOverTheCapStopsTheDecoder) {
    SseDecoder d(1000);
    auto none = [](const std::string&) { FAIL() << "no event expected"; };
    EXPECT_TRUE(d.feed(std::string(900, 'a'), none));
    EXPECT_FALSE(d.feed(std::string(200, 'a'), none));
    EXPECT_NE(d.error().find("line of more than 1000 bytes"), std::string::npos) << d.error();
    EXPECT_FALSE(d.feed("\n\n", none));  // stays stopped

    SseDecoder e(1000);  // many short data lines of one event
    std::string many;
    for (int i = 0; i < 20; ++i) many += "data: " + std::string(90, 'b') + "\n";
    EXPECT_FALSE(e.feed(many, none));
    EXPECT_NE(e.error().find("event of more than 1000 bytes"), std::string::npos) << e.error();
}

TEST_F(HostileServer, OversizedLineFailsFastWithTheLimitNamed) {
    HostileRun r = run([](const nlohmann::ordered_json&) {
        StubReply s;
        std::string big = "data: {\"choices\":[{\"delta\":{\"content\":\"" + std::string(40u << 20, 'a') + "\"}}]}\n\n";
        s.raw = {big};
        return s;
    });
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_TRUE(r.turn_done);
    EXPECT_NE(r.out.error.find("max_line_bytes"), std::string::npos) << r.out.error;
    EXPECT_LT(r.secs, 3.0);
}

TEST_F(HostileServer, ContentAndArgumentSizesAreCapped) {
    // 17 MiB of content in 256 KiB chunks: over the 16 MiB default.
    std::vector<std::string> events;
    for (int i = 0; i < 68; ++i) events.push_back(StubOpenAIServer::text(std::string(256 << 10, 'c')));
    events.push_back(StubOpenAIServer::finish("stop"));
    HostileRun r = run_events(events);
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_NE(r.out.error.find("max_content_bytes"), std::string::npos) << r.out.error;

    // 5 MiB of arguments for one call: over the 4 MiB default.
    events = {StubOpenAIServer::call_start(0, "c0", "say")};
    for (int i = 0; i < 20; ++i) events.push_back(StubOpenAIServer::call_args(0, std::string(256 << 10, 'a')));
    events.push_back(StubOpenAIServer::finish("tool_calls"));
    r = run_events(events);
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_NE(r.out.error.find("max_argument_bytes"), std::string::npos) << r.out.error;
    EXPECT_TRUE(r.results.empty());

    // 20 calls of 1 MiB each: every call is under its own cap, the message is not.
    events.clear();
    for (int c = 0; c < 20; ++c) {
        events.push_back(StubOpenAIServer::call_start(c, "c" + std::to_string(c), "say"));
        for (int i = 0; i < 4; ++i) events.push_back(StubOpenAIServer::call_args(c, std::string(256 << 10, 'a')));
    }
    r = run_events(events);
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_NE(r.out.error.find("max_content_bytes"), std::string::npos) << r.out.error;
}

TEST_F(HostileServer, NonStreamingJsonReplyIsAccepted) {
    HostileRun r = run([](const nlohmann::ordered_json& req) {
        StubReply s;
        if (req["messages"].back()["role"] == "tool") {
            s.json_body = R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
              "content":"done: )" + req["messages"].back()["content"].get<std::string>() +
                          R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}})";
        } else {
            s.json_body = R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
              "content":null,"reasoning_content":"think","tool_calls":[{"id":"c0","type":"function",
              "function":{"name":"say","arguments":"{\"word\":\"hello\"}"}}]},"finish_reason":"tool_calls"}],
              "usage":{"prompt_tokens":10,"completion_tokens":5}})";
        }
        return s;
    });
    ASSERT_EQ(r.out.stop, StopReason::FinalAnswer) << r.out.error;
    EXPECT_EQ(r.out.final_answer, "done: hello");
    EXPECT_EQ(r.out.generated_tokens, 8);
    ASSERT_EQ(r.out.step_stats.size(), 2u);
    EXPECT_EQ(r.out.step_stats[0].prompt_tokens, 10);
    EXPECT_EQ(r.history[1]["reasoning_content"], "think");
    EXPECT_EQ(r.history[1]["tool_calls"][0]["function"]["arguments"]["word"], "hello");

    // A malformed JSON reply fails clearly instead of becoming an empty answer.
    r = run([](const nlohmann::ordered_json&) {
        StubReply s;
        s.json_body = R"({"choices":[{"message":{"content":)";
        return s;
    });
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_NE(r.out.error.find("invalid JSON in the JSON reply"), std::string::npos) << r.out.error;
}

TEST_F(HostileServer, SilentServerTimesOut) {
    RemoteOptions ro;
    ro.idle_timeout = std::chrono::milliseconds(150);
    HostileRun r = run([](const nlohmann::ordered_json&) {
        StubReply s;
        s.events = {StubOpenAIServer::text("late")};
        s.delay = std::chrono::milliseconds(400);
        return s;
    }, ro);
    EXPECT_EQ(r.out.stop, StopReason::Error);
    EXPECT_TRUE(r.turn_done);
    EXPECT_NE(r.out.error.find("sent nothing for 150 ms (idle timeout)"), std::string::npos) << r.out.error;
    EXPECT_LT(r.secs, 0.6);
}

// --- Tool calls per message and at once (security issue item 7). ---

TEST_F(HostileServer, ToolCallsPerMessageAreCapped) {
    std::vector<std::pair<std::string, std::string>> calls(40, {"say", R"({"word": "w"})"});
    LoopOptions lo;
    ASSERT_EQ(lo.limits.max_tool_calls_per_message, 32);
    HostileRun r = run(calls_then_answer(calls), {}, lo);
    ASSERT_EQ(r.out.stop, StopReason::FinalAnswer) << r.out.error;
    EXPECT_EQ(r.out.tools_called.size(), 32u);
    ASSERT_EQ(r.results.size(), 40u);
    int refused = 0;
    for (const ToolOutcome& o : r.results)
        if (o.is_error && o.text.find("max_tool_calls_per_message") != std::string::npos) ++refused;
    EXPECT_EQ(refused, 8);
    // Every call gets its tool message, in call order; the last 8 carry the refusal.
    ASSERT_EQ(r.history.size(), 2u + 40u + 1u);
    EXPECT_EQ(r.history[2 + 31]["content"], "w");
    EXPECT_EQ(r.history[2 + 31]["tool_call_id"], "c31");
    EXPECT_NE(r.history[2 + 32]["content"].get<std::string>().find("not executed"), std::string::npos);
    EXPECT_EQ(r.history[2 + 39]["tool_call_id"], "c39");
}

TEST_F(HostileServer, ConcurrentToolCallsAreBoundedAndResultsStayInOrder) {
    std::vector<std::pair<std::string, std::string>> calls(8, {"snooze", "{}"});
    calls[5] = {"say", R"({"word": "five"})"};
    LoopOptions lo;
    ASSERT_EQ(lo.limits.max_parallel_tools, 4);
    StubOpenAIServer server(calls_then_answer(calls));
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, lo);
    int running = 0, most = 0;
    TurnOutcome out = run_turn(*loop, "go", nullptr, [&](const LoopEvent& ev) {
        if (ev.kind == LoopEvent::Kind::ToolCallStarted) most = std::max(most, ++running);
        if (ev.kind == LoopEvent::Kind::ToolResult) --running;
    });
    ASSERT_EQ(out.stop, StopReason::FinalAnswer) << out.error;
    EXPECT_EQ(most, 4);
    EXPECT_EQ(out.tools_called.size(), 8u);
    const ojson& m = loop->messages();
    ASSERT_EQ(m.size(), 2u + 8u + 1u);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(m[2 + i]["tool_call_id"], "c" + std::to_string(i));
    EXPECT_EQ(m[2 + 5]["content"], "five");
}

TEST_F(HostileServer, CancellingSkipsQueuedToolCalls) {
    std::vector<std::pair<std::string, std::string>> calls(6, {"hang", "{}"});
    LoopOptions lo;
    lo.limits.max_parallel_tools = 2;
    StubOpenAIServer server(calls_then_answer(calls));
    OpenAIBackend backend(io_, server.base_url(), "stub");
    RegistryExecutor exec(*registry_, io_);
    auto loop = std::make_shared<AgentLoop>(io_, backend, exec, lo);
    int started = 0;
    std::vector<ToolOutcome> results;
    boost::asio::steady_timer timer(io_);
    auto t0 = Clock::now();
    TurnOutcome out = run_turn(*loop, "go", nullptr, [&](const LoopEvent& ev) {
        if (ev.kind == LoopEvent::Kind::ToolCallStarted && ++started == 2) {
            timer.expires_after(std::chrono::milliseconds(200));
            timer.async_wait([&](const boost::system::error_code&) { loop->cancel(); });
        }
        if (ev.kind == LoopEvent::Kind::ToolResult) results.push_back(*ev.outcome);
    });
    EXPECT_EQ(out.stop, StopReason::Cancelled);
    EXPECT_EQ(started, 2);
    ASSERT_EQ(results.size(), 6u);
    auto skipped = [](const ToolOutcome& o) { return o.text.find("cancelled before it started") != std::string::npos; };
    EXPECT_EQ(std::count_if(results.begin(), results.end(), skipped), 4);
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
}

}  // namespace
}  // namespace qnext::agent
