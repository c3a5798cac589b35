// `qnext serve` (agent/server/): the OpenAI request mapping (pure), and the HTTP server end to end on the
// demo model over loopback: JSON and SSE answers agree, tool calls, tool_choice modes, response_format,
// stop strings, state reuse across requests (cached_tokens, output identical to a cold prefill), concurrent
// clients equal to sequential runs, client disconnects cancel, errors in OpenAI's shape with the right status,
// body/header limits, slow clients, API keys, queue limits, shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "agent/inprocess_backend.h"
#include "agent/runtime.h"
#include "agent/server/http_server.h"
#include "agent/server/openai_api.h"
#include "agent/server/slots.h"
#include "model/tokenizer.h"

namespace qnext::agent::server {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

ojson read_json(const fs::path& p) {
    std::ifstream in(p);
    return ojson::parse(in);
}

ServeDefaults defaults() {
    ServeDefaults d;
    d.model_name = "demo";
    d.sampling.temperature = 0.7;
    return d;
}

// ---- request mapping (no model) ------------------------------------------------------------------------------

int status_of(const ojson& body, std::string* param = nullptr) {
    try {
        parse_chat_request(body, defaults());
    } catch (const ApiError& e) {
        if (param) *param = e.param;
        return e.status;
    }
    return 200;
}

TEST(OpenAIRequest, MapsEveryParameter) {
    ojson body = ojson::parse(R"({
      "model": "demo", "stream": true, "stream_options": {"include_usage": true},
      "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
           "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
      "tools": [{"type": "function", "function": {"name": "f", "strict": true,
                 "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false,
      "max_tokens": 7, "max_completion_tokens": 9, "temperature": 0, "top_p": 0.5, "top_k": 3, "min_p": 0.1,
      "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 12, "stop": ["x", "yz"],
      "chat_template_kwargs": {"enable_thinking": true}, "user": "ignored", "metadata": {"a": 1}})");
    ChatRequest r = parse_chat_request(body, defaults());
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_EQ(r.gen.messages[0]["role"], "system");
    EXPECT_EQ(r.gen.messages[1]["content"], "a\nb");
    EXPECT_EQ(r.gen.messages[2]["content"], "");
    EXPECT_EQ(r.gen.messages[2]["tool_calls"][0]["function"]["arguments"], ojson::parse(R"({"x": 1})"));
    EXPECT_EQ(r.gen.messages[3]["tool_call_id"], "call_1");
    EXPECT_FALSE(r.gen.tools[0]["function"].contains("strict"));
    EXPECT_EQ(r.gen.tool_choice, "f");
    EXPECT_FALSE(r.gen.parallel_tool_calls);
    EXPECT_EQ(r.gen.max_tokens, 9);
    EXPECT_EQ(r.gen.sampling.temperature, 0);
    EXPECT_EQ(r.gen.sampling.top_p, 0.5);
    EXPECT_EQ(r.gen.sampling.top_k, 3);
    EXPECT_EQ(r.gen.sampling.min_p, 0.1);
    EXPECT_EQ(r.gen.sampling.presence_penalty, 0.5);
    EXPECT_EQ(r.gen.sampling.frequency_penalty, -0.5);
    EXPECT_EQ(r.gen.sampling.seed, 12u);
    EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "yz"}));
    EXPECT_TRUE(r.gen.thinking);

    ChatRequest plain = parse_chat_request(ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}]})"), defaults());
    EXPECT_EQ(plain.gen.max_tokens, -1);            // the rest of the context
    EXPECT_EQ(plain.gen.sampling.temperature, 0.7);  // the model's generation_config
    EXPECT_FALSE(plain.gen.thinking);
    EXPECT_EQ(plain.model, "demo");
    ChatRequest effort = parse_chat_request(
        ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low",
                         "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer"}}}})"),
        defaults());
    EXPECT_TRUE(effort.gen.thinking);
    EXPECT_EQ(*effort.gen.response_schema, ojson::parse(R"({"type": "integer"})"));
}

TEST(OpenAIRequest, RefusesBadInputNamingTheParameter) {
    const std::string user = R"("messages": [{"role": "user", "content": "hi"}])";
    struct Case {
        std::string body;
        int status;
        std::string param;
    };
    std::vector<Case> cases = {
        {"[]", 400, ""},
        {"{}", 400, "messages"},
        {R"({"messages": []})", 400, "messages"},
        {R"({"messages": "hi"})", 400, "messages"},
        {R"({"messages": [{"content": "x"}]})", 400, "messages[0].role"},
        {R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "messages[0].role"},
        {R"({"messages": [{"role": "user"}]})", 400, "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": 5}]})", 400, "messages[0].content"},
        {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})", 400,
         "messages[0].content[0].type"},
        {R"({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]})",
         400, "messages[0].tool_calls[0].function.arguments"},
        {"{\"model\": \"gpt-4o\", " + user + "}", 404, "model"},
        {"{" + user + ", \"n\": 2}", 400, "n"},
        {"{" + user + ", \"logprobs\": true}", 400, "logprobs"},
        {"{" + user + ", \"temperature\": \"hot\"}", 400, "temperature"},
        {"{" + user + ", \"temperature\": 3}", 400, "temperature"},
        {"{" + user + ", \"top_p\": 0}", 400, "top_p"},
        {"{" + user + ", \"max_tokens\": 0}", 400, "max_tokens"},
        {"{" + user + ", \"max_tokens\": 1.5}", 400, "max_tokens"},
        {"{" + user + ", \"seed\": 1e300}", 400, "seed"},
        {"{" + user + ", \"stream\": \"yes\"}", 400, "stream"},
        {"{" + user + ", \"stop\": [\"\"]}", 400, "stop"},
        {"{" + user + ", \"stop\": 3}", 400, "stop"},
        {"{" + user + ", \"tools\": [{\"type\": \"retrieval\"}]}", 400, "tools[0].type"},
        {"{" + user + ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": 3}}]}", 400,
         "tools[0].function.parameters"},
        {"{" + user + ", \"tool_choice\": \"sometimes\"}", 400, "tool_choice"},
        {"{" + user + ", \"tool_choice\": \"required\"}", 400, "tool_choice"},
        {"{" + user + ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"g\"}}, "
                      "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
         400, "tool_choice"},
        {"{" + user + ", \"response_format\": {\"type\": \"xml\"}}", 400, "response_format.type"},
        {"{" + user + ", \"response_format\": {\"type\": \"json_object\"}, "
                      "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
         400, "response_format"},
        {"{" + user + ", \"reasoning_effort\": \"max\"}", 400, "reasoning_effort"},
        {"{" + user + ", \"chat_template_kwargs\": {\"enable_thinking\": 1}}", 400, "chat_template_kwargs.enable_thinking"},
    };
    for (const Case& c : cases) {
        std::string param;
        EXPECT_EQ(status_of(ojson::parse(c.body), &param), c.status) << c.body;
        EXPECT_EQ(param, c.param) << c.body;
    }
    // The error body is OpenAI's shape.
    ApiError e(400, "'n': only n = 1 is supported", "n", "unsupported_parameter");
    EXPECT_EQ(e.body(), ojson::parse(R"({"error": {"message": "'n': only n = 1 is supported",
        "type": "invalid_request_error", "param": "n", "code": "unsupported_parameter"}})"));
}

// Stop strings are cut out of the streamed text even when they arrive split across events, and nothing of the
// stop string (or after it) is ever sent.
TEST(OpenAIRequest, StopStringsAcrossEvents) {
    ChatRequest r = parse_chat_request(
        ojson::parse(R"({"messages": [{"role": "user", "content": "hi"}], "stream": true, "stop": ["END", "ü!"]})"),
        defaults());
    for (const auto& pieces : std::vector<std::vector<std::string>>{
             {"abc E", "N", "D more"}, {"abcEND"}, {"ab", "c", "E", "ND"}, {"abc\xc3", "\xbc!"}, {"abcü", "!x"}}) {
        std::string streamed;
        bool stopped = false;
        ChatCompletion c(r, "id", 0, [&](const ojson& ch) {
            if (!ch["choices"].empty() && ch["choices"][0]["delta"].contains("content"))
                streamed += ch["choices"][0]["delta"]["content"].get<std::string>();
        }, [&] { stopped = true; });
        for (const auto& p : pieces) c.on_event({GenerationEvent::Kind::Text, p, 0});
        EXPECT_TRUE(stopped);
        GenerationResult res;
        res.finish = FinishReason::Cancelled;
        ojson resp = c.finish(res);
        std::string want = pieces[0].rfind("abc ", 0) == 0 ? "abc " : "abc";
        EXPECT_EQ(streamed, want);
        EXPECT_EQ(resp["choices"][0]["message"]["content"], want == "abc " ? "abc" : "abc");
        EXPECT_EQ(resp["choices"][0]["finish_reason"], "stop");
    }
}

// ---- the server on the demo model ------------------------------------------------------------------------------

struct Reply {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;
    ojson json() const { return ojson::parse(body); }
};

Reply request(uint16_t port, http::verb method, const std::string& target, const std::string& body = {},
              std::map<std::string, std::string> headers = {}) {
    net::io_context io;
    beast::tcp_stream s(io);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == http::verb::post) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
    }
    http::write(s, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(size_t{64} << 20);
    http::read(s, buf, p);
    Reply r;
    r.status = static_cast<int>(p.get().result_int());
    r.body = p.get().body();
    for (const auto& f : p.get()) r.headers[std::string(f.name_string())] = std::string(f.value());
    return r;
}

Reply post(uint16_t port, const ojson& body, std::map<std::string, std::string> headers = {}) {
    return request(port, http::verb::post, "/v1/chat/completions", body.dump(), std::move(headers));
}

// The SSE body as its JSON chunks (without [DONE]); checks the framing.
std::vector<ojson> sse_chunks(const std::string& body) {
    std::vector<ojson> out;
    size_t pos = 0;
    bool done = false;
    while (pos < body.size()) {
        size_t end = body.find("\n\n", pos);
        EXPECT_NE(end, std::string::npos) << "unterminated event";
        if (end == std::string::npos) break;
        std::string ev = body.substr(pos, end - pos);
        pos = end + 2;
        EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
        EXPECT_FALSE(done) << "event after [DONE]";
        if (ev == "data: [DONE]") done = true;
        else out.push_back(ojson::parse(ev.substr(6)));
    }
    EXPECT_TRUE(done);
    return out;
}

// The message a client rebuilds from the chunks (content, reasoning, tool calls by index).
struct Assembled {
    std::string content, reasoning, finish;
    std::map<int, std::pair<std::string, std::string>> calls;   // index -> (name, arguments)
    ojson usage;
};
Assembled assemble(const std::vector<ojson>& chunks) {
    Assembled a;
    for (const ojson& c : chunks) {
        EXPECT_EQ(c["object"], "chat.completion.chunk");
        if (c.contains("usage")) a.usage = c["usage"];
        if (c["choices"].empty()) continue;
        const ojson& ch = c["choices"][0];
        if (ch["finish_reason"].is_string()) a.finish = ch["finish_reason"];
        const ojson& d = ch["delta"];
        if (d.contains("content")) a.content += d["content"].get<std::string>();
        if (d.contains("reasoning_content")) a.reasoning += d["reasoning_content"].get<std::string>();
        if (d.contains("tool_calls"))
            for (const ojson& tc : d["tool_calls"]) {
                auto& slot = a.calls[tc["index"].get<int>()];
                if (tc.contains("id")) {
                    EXPECT_EQ(tc["id"].get<std::string>().rfind("call_", 0), 0u);
                    slot.first = tc["function"]["name"];
                }
                if (tc["function"].contains("arguments")) slot.second += tc["function"]["arguments"].get<std::string>();
            }
    }
    return a;
}

std::string trim(const std::string& t) {
    size_t b = t.find_first_not_of(" \n\r\t");
    if (b == std::string::npos) return {};
    return t.substr(b, t.find_last_not_of(" \n\r\t") - b + 1);
}

int64_t metric(uint16_t port, const std::string& name, const std::string& key = "sekret") {
    Reply r = request(port, http::verb::get, "/metrics", {}, {{"Authorization", "Bearer " + key}});
    std::smatch m;
    std::regex re("\n" + name + " ([0-9.e+]+)\n");
    if (!std::regex_search(r.body, m, re)) return -1;
    return static_cast<int64_t>(std::stod(m[1]));
}

// One running server (its own slots) on a background io thread.
struct Running {
    net::io_context io;
    std::unique_ptr<Runtime> runtime;
    std::unique_ptr<SlotPool> slots;
    std::unique_ptr<Server> server;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::thread thread;

    Running(int parallel, size_t queue, ServeOptions so = {}, int64_t context = 2048) {
        RuntimeOptions ro;
        ro.quiet = true;
        ro.max_context = context;
        runtime = std::make_unique<Runtime>(io, ro);
        std::vector<std::unique_ptr<InProcessBackend>> b;
        for (int i = 0; i < parallel; ++i) b.push_back(runtime->make_serving_backend());
        slots = std::make_unique<SlotPool>(std::move(b), queue);
        so.port = 0;
        so.context = context;
        server = std::make_unique<Server>(io, *slots, runtime->tokenizer(), defaults(), so);
        server->start();
        work.emplace(io.get_executor());
        thread = std::thread([this] { io.run(); });
    }
    uint16_t port() const { return server->port(); }
    // Runs fn on the io thread and waits.
    template <class F>
    void on_io(F fn) {
        std::promise<void> p;
        net::post(io, [&] {
            fn();
            p.set_value();
        });
        p.get_future().get();
    }
    ~Running() {
        on_io([&] { server->shutdown(); });
        work.reset();
        thread.join();
    }
};

Running* g_srv = nullptr;

// A request that generates until the slot's context is full (~0.25 ms per token on the demo model): an array
// of at least 8 strings of >= 1000 characters each.
ojson long_request(bool stream) {
    ojson schema = {{"type", "array"}, {"items", {{"type", "string"}, {"minLength", 1000}}}, {"minItems", 8}};
    return {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "Tell me a long story"}}}},
            {"temperature", 0.8}, {"stream", stream},
            {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "story"}, {"schema", schema}}}}}};
}

class Serve : public ::testing::Test {
protected:
    static void SetUpTestSuite() { g_srv = new Running(2, 64); }
    static void TearDownTestSuite() {
        delete g_srv;
        g_srv = nullptr;
    }
    uint16_t port() const { return g_srv->port(); }
    static ojson tools() { return read_json(fs::path(QNEXT_SOURCE_DIR) / "configs/tools/builtin.json"); }
    static ojson ask(const std::string& q) {
        return {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", q}}}}, {"temperature", 0},
                {"max_tokens", 80}, {"tools", tools()}};
    }
};

TEST_F(Serve, HealthModelsRoutes) {
    Reply h = request(port(), http::verb::get, "/health");
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(h.json()["status"], "ok");
    Reply m = request(port(), http::verb::get, "/v1/models");
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(m.json()["data"][0]["id"], "demo");
    EXPECT_EQ(request(port(), http::verb::get, "/v1/models/demo").status, 200);
    Reply unknown = request(port(), http::verb::get, "/v1/models/gpt-4o");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(unknown.json()["error"]["code"], "model_not_found");
    Reply nope = request(port(), http::verb::get, "/v2/whatever");
    EXPECT_EQ(nope.status, 404);
    EXPECT_TRUE(nope.json()["error"]["message"].get<std::string>().find("/v2/whatever") != std::string::npos);
    EXPECT_EQ(request(port(), http::verb::get, "/v1/chat/completions").status, 405);
}

TEST_F(Serve, ToolCallJsonAndStreamAgree) {
    ojson body = ask("What is 37 * 12?");
    body["tool_choice"] = "required";
    Reply r = post(port(), body);
    ASSERT_EQ(r.status, 200) << r.body;
    ojson j = r.json();
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    const ojson& choice = j["choices"][0];
    EXPECT_EQ(choice["finish_reason"], "tool_calls") << r.body;
    const ojson& msg = choice["message"];
    ASSERT_FALSE(msg["tool_calls"].empty());
    const ojson& call = msg["tool_calls"][0];
    EXPECT_EQ(call["type"], "function");
    EXPECT_EQ(call["function"]["name"], "python");
    ASSERT_TRUE(call["function"]["arguments"].is_string());   // OpenAI: a string holding JSON
    ojson args = ojson::parse(call["function"]["arguments"].get<std::string>());
    EXPECT_TRUE(args["code"].get<std::string>().find("37") != std::string::npos);
    EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 50);
    EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    Reply s = post(port(), body);
    ASSERT_EQ(s.status, 200);
    EXPECT_EQ(s.headers["Content-Type"], "text/event-stream");
    Assembled a = assemble(sse_chunks(s.body));
    EXPECT_EQ(a.finish, "tool_calls");
    ASSERT_EQ(a.calls.size(), msg["tool_calls"].size());
    for (size_t i = 0; i < a.calls.size(); ++i) {
        EXPECT_EQ(a.calls[static_cast<int>(i)].first, msg["tool_calls"][i]["function"]["name"]);
        EXPECT_EQ(a.calls[static_cast<int>(i)].second, msg["tool_calls"][i]["function"]["arguments"]);
    }
    EXPECT_EQ(trim(a.content), msg["content"].is_null() ? "" : msg["content"].get<std::string>());
    EXPECT_EQ(a.usage["completion_tokens"], j["usage"]["completion_tokens"]);
    EXPECT_EQ(a.usage["prompt_tokens"], j["usage"]["prompt_tokens"]);
}

// Turn 2 re-sends turn 1 plus the tool result: only the new tokens are computed, and the answer equals a cold
// prefill's.
TEST_F(Serve, SecondTurnResumesFromKeptState) {
    ojson body = ask("What is 37 * 12?");
    body["tool_choice"] = "required";
    body["parallel_tool_calls"] = false;
    ojson first = post(port(), body).json();
    ojson msg = first["choices"][0]["message"];
    ASSERT_EQ(msg["tool_calls"].size(), 1u) << first.dump();
    body["messages"].push_back(msg);
    body["messages"].push_back({{"role", "tool"}, {"tool_call_id", msg["tool_calls"][0]["id"]}, {"content", "444\n"}});
    body["tool_choice"] = "auto";
    Reply second = post(port(), body);
    ASSERT_EQ(second.status, 200) << second.body;
    ojson j = second.json();
    const int prompt = j["usage"]["prompt_tokens"], cached = j["usage"]["prompt_tokens_details"]["cached_tokens"];
    EXPECT_GT(cached, prompt / 2) << second.body;
    EXPECT_LT(cached, prompt);
    const std::string answer = j["choices"][0]["message"]["content"];
    EXPECT_TRUE(answer.find("444") != std::string::npos) << answer;

    // Cold: a fresh backend with reuse off.
    std::promise<GenerationResult> p;
    std::unique_ptr<InProcessBackend> cold;
    ChatRequest cr = parse_chat_request(body, defaults());
    g_srv->on_io([&] {
        cold = g_srv->runtime->make_serving_backend();
        cold->set_reuse(false);
        cold->async_generate(cr.gen, [](const GenerationEvent&) {}, [&](GenerationResult r) { p.set_value(std::move(r)); });
    });
    GenerationResult r = p.get_future().get();
    EXPECT_EQ(r.stats.reused_tokens, 0);
    EXPECT_EQ(r.content, answer);
    g_srv->on_io([&] { cold.reset(); });
}

TEST_F(Serve, ToolChoiceModesAndResponseFormat) {
    ojson none = ask("What is 37 * 12?");
    none["tool_choice"] = "none";
    none["max_tokens"] = 24;
    ojson j = post(port(), none).json();
    EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));

    ojson named = ask("list the files");
    named["tool_choice"] = {{"type", "function"}, {"function", {{"name", "shell"}}}};
    j = post(port(), named).json();
    ASSERT_EQ(j["choices"][0]["message"]["tool_calls"].size(), 1u) << j.dump();
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "shell");
    ojson::parse(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()).at("command");

    ojson schema = {{"type", "object"},
                    {"properties", {{"answer", {{"type", "integer"}}}, {"unit", {{"enum", {"apples", "pears"}}}}}},
                    {"required", {"answer", "unit"}},
                    {"additionalProperties", false}};
    ojson rf = {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "How many apples?"}}}}, {"temperature", 0},
                {"max_tokens", 60},
                {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}, {"strict", true}}}}}};
    Reply r = post(port(), rf);
    ASSERT_EQ(r.status, 200) << r.body;
    j = r.json();
    ASSERT_EQ(j["choices"][0]["finish_reason"], "stop") << r.body;
    ojson value = ojson::parse(j["choices"][0]["message"]["content"].get<std::string>());
    EXPECT_TRUE(value["answer"].is_number_integer());
    EXPECT_TRUE(value["unit"] == "apples" || value["unit"] == "pears");
    EXPECT_EQ(value.size(), 2u);

    ojson bad_schema = rf;
    bad_schema["response_format"]["json_schema"]["schema"] = {{"type", "object"}, {"properties", {{"a", {{"$ref", 5}}}}}};
    Reply e = post(port(), bad_schema);
    EXPECT_EQ(e.status, 400) << e.body;
    EXPECT_TRUE(e.json()["error"]["message"].get<std::string>().find("$ref") != std::string::npos) << e.body;
}

TEST_F(Serve, StopStringEndsTheAnswer) {
    ojson body = ask("What is 37 * 12?");
    body["tool_choice"] = "none";
    body["max_tokens"] = 30;
    std::string full = post(port(), body).json()["choices"][0]["message"]["content"];
    ASSERT_GT(full.size(), 12u) << full;
    std::string stop = full.substr(6, 3);
    size_t at = full.find(stop);
    body["stop"] = stop;
    for (bool stream : {false, true}) {
        body["stream"] = stream;
        Reply r = post(port(), body);
        ASSERT_EQ(r.status, 200);
        std::string content, finish;
        if (stream) {
            Assembled a = assemble(sse_chunks(r.body));
            content = a.content;
            finish = a.finish;
        } else {
            content = r.json()["choices"][0]["message"]["content"];
            finish = r.json()["choices"][0]["finish_reason"];
        }
        EXPECT_EQ(trim(content), trim(full.substr(0, at))) << stream;
        EXPECT_EQ(finish, "stop");
    }
}

TEST_F(Serve, TokenizeDetokenize) {
    Reply t = request(port(), http::verb::post, "/tokenize", R"({"content": "What is 37 * 12?"})");
    ASSERT_EQ(t.status, 200) << t.body;
    std::vector<int32_t> ids = t.json()["tokens"];
    EXPECT_EQ(ids, g_srv->runtime->tokenizer().encode("What is 37 * 12?"));
    Reply d = request(port(), http::verb::post, "/detokenize", ojson{{"tokens", ids}}.dump());
    EXPECT_EQ(d.json()["content"], "What is 37 * 12?");
    Reply m = request(port(), http::verb::post, "/tokenize", ask("hi").dump());
    EXPECT_GT(m.json()["count"].get<int>(), 50);
    EXPECT_EQ(request(port(), http::verb::post, "/detokenize", R"({"tokens": [-1]})").status, 400);
    EXPECT_EQ(request(port(), http::verb::post, "/tokenize", R"({"text": 1})").status, 400);
}

TEST_F(Serve, MalformedRequestsGetOpenAIErrors) {
    Reply r = request(port(), http::verb::post, "/v1/chat/completions", "{not json");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.json()["error"]["type"], "invalid_request_error");
    r = request(port(), http::verb::post, "/v1/chat/completions", std::string(300, '[') + std::string(300, ']'));
    EXPECT_EQ(r.status, 400);
    r = post(port(), {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"n", 3}});
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.json()["error"]["param"], "n");
    r = post(port(), {{"model", "other"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}});
    EXPECT_EQ(r.status, 404);
    // A conversation longer than the slot's context.
    r = post(port(), {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", std::string(30000, 'x')}}}}});
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_TRUE(r.body.find("context") != std::string::npos) << r.body;
    // Still serving.
    EXPECT_EQ(request(port(), http::verb::get, "/health").status, 200);
}

// Several clients at once (more than slots: the rest queue): each answer equals the same request run alone.
TEST_F(Serve, ConcurrentClientsEqualSequential) {
    std::vector<std::string> questions = {"What is 37 * 12?", "What is 3 + 4?", "What is 100 / 8?", "Reverse 'hello'",
                                          "What is 2 ** 10?", "What is 91 - 17?"};
    auto run = [&](const std::string& q) {
        ojson b = ask(q);
        b["stream"] = true;
        b["tool_choice"] = "required";
        Reply r = post(port(), b);
        EXPECT_EQ(r.status, 200);
        Assembled a = assemble(sse_chunks(r.body));
        std::string s = a.content + "|";
        for (auto& [i, c] : a.calls) s += c.first + ":" + c.second + ";";
        return s;
    };
    std::vector<std::string> sequential;
    for (const auto& q : questions) sequential.push_back(run(q));
    std::vector<std::future<std::string>> futures;
    for (int rep = 0; rep < 2; ++rep)
        for (const auto& q : questions) futures.push_back(std::async(std::launch::async, run, q));
    for (size_t i = 0; i < futures.size(); ++i) EXPECT_EQ(futures[i].get(), sequential[i % questions.size()]) << i;
}

// A client that hangs up mid-stream cancels its generation at once (the slot is free again).
TEST_F(Serve, DisconnectCancelsGeneration) {
    const int64_t before = metric(port(), "qnext_client_disconnects_total");
    ojson b = long_request(true);
    for (int i = 0; i < 2; ++i) {   // both slots
        net::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port()));
        std::string body = b.dump();
        std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        net::write(s, net::buffer(req));
        char buf[512];
        s.read_some(net::buffer(buf));   // the headers / first chunk
        s.close();
    }
    auto t0 = std::chrono::steady_clock::now();
    while (metric(port(), "qnext_busy_slots") != 0 && std::chrono::steady_clock::now() - t0 < 10s)
        std::this_thread::sleep_for(20ms);
    EXPECT_EQ(metric(port(), "qnext_busy_slots"), 0);
    // A whole generation takes ~500 ms here; a cancelled one ends within a few tokens.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 150ms);
    EXPECT_EQ(metric(port(), "qnext_client_disconnects_total"), before + 2);
    EXPECT_EQ(post(port(), ask("What is 3 + 4?")).status, 200);
}

// Limits: API key, body size, header size, slow header, queue full, connections.
TEST(ServeLimits, KeysBodiesSlowClientsQueues) {
    ServeOptions so;
    so.api_key = "sekret";
    so.max_body_bytes = 4096;
    so.max_header_bytes = 2048;
    so.read_timeout = 400ms;
    so.max_connections = 4;
    Running srv(1, 0, so, 4096);
    const uint16_t port = srv.port();
    const std::map<std::string, std::string> key = {{"Authorization", "Bearer sekret"}};
    ojson hi = {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "What is 3 + 4?"}}}}, {"temperature", 0},
                {"max_tokens", 8}};

    Reply r = post(port, hi);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.json()["error"]["type"], "authentication_error");
    EXPECT_EQ(post(port, hi, {{"Authorization", "Bearer wrong"}}).status, 401);
    EXPECT_EQ(request(port, http::verb::get, "/v1/models").status, 401);
    EXPECT_EQ(request(port, http::verb::get, "/health").status, 200);   // open, for load balancers
    EXPECT_EQ(post(port, hi, key).status, 200);

    ojson big = hi;
    big["messages"][0]["content"] = std::string(10000, 'x');
    r = post(port, big, key);
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(request(port, http::verb::get, "/v1/models", {}, {{"Authorization", "Bearer sekret"}, {"X-Pad", std::string(4000, 'p')}}).status, 431);

    // A client that sends half a header and stalls is dropped after the read timeout.
    {
        net::io_context io;
        tcp::socket s(io);
        s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
        net::write(s, net::buffer(std::string("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")));
        auto t0 = std::chrono::steady_clock::now();
        char buf[64];
        boost::system::error_code ec;
        s.read_some(net::buffer(buf), ec);
        EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    }

    // One slot, no queue: a second request while the first generates gets 429.
    net::io_context io;
    tcp::socket hold(io);
    hold.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    std::string body = long_request(true).dump();
    net::write(hold, net::buffer("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    char buf[256];
    hold.read_some(net::buffer(buf));
    r = post(port, hi, key);
    EXPECT_EQ(r.status, 429) << r.body;
    EXPECT_EQ(r.json()["error"]["code"], "queue_full");
    hold.close();
    auto t0 = std::chrono::steady_clock::now();   // until the held connection is gone
    while (metric(port, "qnext_open_connections") != 1 && std::chrono::steady_clock::now() - t0 < 5s)
        std::this_thread::sleep_for(10ms);

    // More connections than allowed: the extra ones get 503.
    std::vector<std::unique_ptr<tcp::socket>> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(std::make_unique<tcp::socket>(io));
        idle.back()->connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    }
    std::this_thread::sleep_for(50ms);
    Reply over = request(port, http::verb::get, "/health");
    EXPECT_EQ(over.status, 503);
    idle.clear();
}

// Shutdown: a running stream ends with an error event and [DONE]; queued requests get 503.
TEST(ServeLimits, ShutdownCancelsInFlight) {
    auto srv = std::make_unique<Running>(1, 4, ServeOptions{}, 4096);
    const uint16_t port = srv->port();
    auto wait_for = [&](const char* name, int64_t value) {
        auto t0 = std::chrono::steady_clock::now();
        while (metric(port, name) != value && std::chrono::steady_clock::now() - t0 < 5s) std::this_thread::sleep_for(5ms);
        ASSERT_EQ(metric(port, name), value) << name;
    };
    auto streaming = std::async(std::launch::async, [&] { return post(port, long_request(true)); });
    wait_for("qnext_busy_slots", 1);
    auto queued = std::async(std::launch::async, [&] { return post(port, long_request(false)); });
    wait_for("qnext_queue_depth", 1);
    srv.reset();   // shutdown, then the io thread ends once everything is answered
    Reply s;
    try { s = streaming.get(); } catch (const std::exception& e) { ADD_FAILURE() << "stream: " << e.what(); }
    EXPECT_EQ(s.status, 200);
    EXPECT_TRUE(s.body.find("\"error\"") != std::string::npos) << s.body.substr(0, 400);
    EXPECT_TRUE(s.body.find("data: [DONE]") != std::string::npos);
    Reply q;
    try { q = queued.get(); } catch (const std::exception& e) { ADD_FAILURE() << "queued: " << e.what(); }
    EXPECT_EQ(q.status, 503) << q.body;
}

}  // namespace
}  // namespace qnext::agent::server
