#include "agent/openai_backend.h"
#include "common/json_limits.h"

#include <array>
#include <chrono>
#include <limits>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace qnext::agent {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

const char* to_string(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::ToolCalls: return "tool_calls";
        case FinishReason::Length: return "length";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
    }
    return "?";
}

HttpUrl parse_http_url(const std::string& url) {
    const std::string scheme = "http://";
    if (url.rfind("https://", 0) == 0)
        throw std::runtime_error("base URL '" + url + "': https is not supported; use http:// (e.g. behind a TLS proxy)");
    if (url.rfind(scheme, 0) != 0) throw std::runtime_error("base URL '" + url + "' must start with http://");
    std::string rest = url.substr(scheme.size());
    HttpUrl out;
    size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    out.path_prefix = slash == std::string::npos ? "" : rest.substr(slash);
    while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
    size_t colon = hostport.rfind(':');
    if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
        out.host = hostport.substr(0, colon);
        out.port = hostport.substr(colon + 1);
    } else {
        out.host = hostport;
        out.port = "80";
    }
    if (out.host.empty()) throw std::runtime_error("base URL '" + url + "' has no host");
    if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos)
        throw std::runtime_error("base URL '" + url + "' has an invalid port");
    return out;
}

// One streaming request. Lives until the response is complete, failed or cancelled.
struct OpenAIBackend::Call : std::enable_shared_from_this<Call> {
    Call(boost::asio::io_context& io, EventHandler ev, DoneHandler done)
        : resolver(io), stream(io), on_event(std::move(ev)), on_done(std::move(done)) {}

    tcp::resolver resolver;
    beast::tcp_stream stream;
    http::request<http::string_body> req;
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    std::array<char, 16384> chunk{};
    SseDecoder sse;
    EventHandler on_event;
    DoneHandler on_done;
    GenerationResult result;
    std::string error_body;
    bool http_error = false;
    bool finished = false;
    bool got_first_token = false;
    Clock::time_point t0 = Clock::now(), t_first;
    std::string finish_reason;

    void start(const HttpUrl& url) {
        stream.expires_after(std::chrono::seconds(30));
        resolver.async_resolve(url.host, url.port,
            [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
                if (ec) return self->fail("resolve: " + ec.message());
                self->stream.async_connect(results, [self](beast::error_code ec2, const tcp::endpoint&) {
                    if (ec2) return self->fail("connect: " + ec2.message());
                    self->stream.expires_after(std::chrono::seconds(600));
                    http::async_write(self->stream, self->req, [self](beast::error_code ec3, size_t) {
                        if (ec3) return self->fail("write: " + ec3.message());
                        // Not boost::none: Beast 1.74 compares Content-Length against the optional and rejects every body.
                        self->parser.body_limit(std::numeric_limits<std::uint64_t>::max());
                        http::async_read_header(self->stream, self->buffer, self->parser,
                            [self](beast::error_code ec4, size_t) {
                                if (ec4) return self->fail("read header: " + ec4.message());
                                self->http_error = self->parser.get().result_int() != 200;
                                self->read_body();
                            });
                    });
                });
            });
    }

    void read_body() {
        if (parser.is_done()) return complete();
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        // read_some: hand over each piece as it arrives (async_read would wait for a full buffer).
        http::async_read_some(stream, buffer, parser, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec == http::error::need_buffer) ec = {};
            if (ec) return self->fail("read: " + ec.message());
            size_t n = self->chunk.size() - self->parser.get().body().size;
            self->consume(std::string_view(self->chunk.data(), n));
            if (self->finished) return;
            self->read_body();
        });
    }

    void consume(std::string_view bytes) {
        if (http_error) {
            if (error_body.size() < 4096) error_body.append(bytes.substr(0, 4096 - error_body.size()));
            return;
        }
        sse.feed(bytes, [this](const std::string& data) { on_sse(data); });
    }

    void on_sse(const std::string& data) {
        if (finished) return;
        if (data == "[DONE]") return complete();
        ojson j = try_parse_json_limited<ojson>(data);
        if (j.is_discarded()) return fail("server sent invalid JSON in the event stream: " + data.substr(0, 200));
        if (j.contains("error")) return fail("server error: " + j["error"].dump());
        if (j.contains("usage") && j["usage"].is_object()) {
            const auto& u = j["usage"];
            result.stats.prompt_tokens = u.value("prompt_tokens", int64_t{0});
            result.stats.generated_tokens = u.value("completion_tokens", int64_t{0});
        }
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
        const auto& choice = j["choices"][0];
        if (choice.contains("delta") && choice["delta"].is_object()) on_delta(choice["delta"]);
        if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
            finish_reason = choice["finish_reason"].get<std::string>();
    }

    void first_token() {
        if (got_first_token) return;
        got_first_token = true;
        t_first = Clock::now();
    }

    void on_delta(const ojson& delta) {
        for (const char* key : {"reasoning_content", "reasoning"}) {
            if (delta.contains(key) && delta[key].is_string() && !delta[key].get<std::string>().empty()) {
                first_token();
                std::string t = delta[key].get<std::string>();
                result.reasoning += t;
                on_event({GenerationEvent::Kind::Reasoning, t, 0});
                break;
            }
        }
        if (delta.contains("content") && delta["content"].is_string()) {
            std::string t = delta["content"].get<std::string>();
            if (!t.empty()) {
                first_token();
                result.content += t;
                on_event({GenerationEvent::Kind::Text, t, 0});
            }
        }
        if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
            for (const auto& tc : delta["tool_calls"]) {
                first_token();
                size_t index = tc.value("index", size_t{0});
                if (index > 1024) return fail("server sent tool call index " + std::to_string(index));
                if (result.tool_calls.size() <= index) result.tool_calls.resize(index + 1);
                ToolCall& call = result.tool_calls[index];
                if (tc.contains("id") && tc["id"].is_string()) call.id = tc["id"].get<std::string>();
                if (tc.contains("function") && tc["function"].is_object()) {
                    const auto& fn = tc["function"];
                    if (fn.contains("name") && fn["name"].is_string() && call.name.empty()) {
                        call.name = fn["name"].get<std::string>();
                        on_event({GenerationEvent::Kind::ToolCallStart, call.name, static_cast<int>(index)});
                    }
                    if (fn.contains("arguments") && fn["arguments"].is_string()) {
                        std::string frag = fn["arguments"].get<std::string>();
                        call.arguments_text += frag;
                        on_event({GenerationEvent::Kind::ToolCallArguments, frag, static_cast<int>(index)});
                    }
                }
            }
        }
    }

    void complete() {
        if (finished) return;
        if (http_error) {
            return fail("HTTP " + std::to_string(parser.get().result_int()) + " from server: " + error_body);
        }
        finished = true;
        auto t_end = Clock::now();
        if (finish_reason == "length") {
            result.finish = FinishReason::Length;
            result.tool_calls.clear();  // a call cut off by max_tokens is never executed
        } else {
            std::vector<ToolCall> complete_calls;
            for (size_t i = 0; i < result.tool_calls.size(); ++i) {
                ToolCall& c = result.tool_calls[i];
                if (c.name.empty()) continue;
                c.arguments = try_parse_json_limited<ojson>(c.arguments_text.empty() ? "{}" : c.arguments_text);
                if (c.id.empty()) c.id = "call_" + std::to_string(i);
                on_event({GenerationEvent::Kind::ToolCallDone, c.name, static_cast<int>(i)});
                complete_calls.push_back(std::move(c));
            }
            result.tool_calls = std::move(complete_calls);
            result.finish = result.tool_calls.empty() ? FinishReason::Stop : FinishReason::ToolCalls;
        }
        auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
        result.stats.total_ms = ms(t_end - t0);
        if (got_first_token) {
            result.stats.ttft_ms = ms(t_first - t0);
            double decode_s = ms(t_end - t_first) / 1000.0;
            if (decode_s > 0 && result.stats.generated_tokens > 1)
                result.stats.decode_tok_s = (result.stats.generated_tokens - 1) / decode_s;
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        auto done = std::move(on_done);
        done(std::move(result));
    }

    void fail(const std::string& what) {
        if (finished) return;
        finished = true;
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
        result.finish = cancelled ? FinishReason::Cancelled : FinishReason::Error;
        if (!cancelled) result.error = "remote backend: " + what;
        result.tool_calls.clear();
        auto done = std::move(on_done);
        done(std::move(result));
    }

    bool cancelled = false;
};

OpenAIBackend::OpenAIBackend(boost::asio::io_context& io, std::string base_url, std::string model, std::string api_key)
    : io_(io), base_url_(std::move(base_url)), model_(std::move(model)), api_key_(std::move(api_key)),
      url_(parse_http_url(base_url_)) {}

OpenAIBackend::~OpenAIBackend() {
    if (current_) {
        current_->cancelled = true;
        current_->on_done = [](GenerationResult) {};
        beast::error_code ignored;
        current_->stream.socket().close(ignored);
    }
}

ojson OpenAIBackend::make_body(const GenerationRequest& r) const {
    ojson body = ojson::object();
    body["model"] = model_;
    body["messages"] = r.messages;
    if (!r.tools.empty()) {
        body["tools"] = r.tools;
        if (r.tool_choice == "auto" || r.tool_choice == "required" || r.tool_choice == "none")
            body["tool_choice"] = r.tool_choice;
        else
            body["tool_choice"] = ojson{{"type", "function"}, {"function", {{"name", r.tool_choice}}}};
        body["parallel_tool_calls"] = r.parallel_tool_calls;
    }
    body["max_tokens"] = r.max_tokens;
    body["temperature"] = r.sampling.temperature;
    if (r.sampling.top_p < 1.0) body["top_p"] = r.sampling.top_p;
    if (r.sampling.top_k > 0) body["top_k"] = r.sampling.top_k;
    if (r.sampling.seed) body["seed"] = r.sampling.seed;
    body["chat_template_kwargs"] = {{"enable_thinking", r.thinking}};
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    return body;
}

void OpenAIBackend::async_generate(const GenerationRequest& request, EventHandler on_event, DoneHandler on_done) {
    if (current_ && !current_->finished) throw std::logic_error("OpenAIBackend: a generation is already running");
    auto call = std::make_shared<Call>(io_, std::move(on_event), std::move(on_done));
    call->req.method(http::verb::post);
    call->req.target(url_.path_prefix + "/chat/completions");
    call->req.version(11);
    call->req.set(http::field::host, url_.host + ":" + url_.port);
    call->req.set(http::field::content_type, "application/json");
    call->req.set(http::field::accept, "text/event-stream");
    call->req.set(http::field::user_agent, "qnext/0.1");
    if (!api_key_.empty()) call->req.set(http::field::authorization, "Bearer " + api_key_);
    call->req.body() = make_body(request).dump();
    call->req.prepare_payload();
    current_ = call;
    call->start(url_);
}

void OpenAIBackend::cancel() {
    if (!current_ || current_->finished) return;
    auto call = current_;
    boost::asio::post(io_, [call] {
        call->cancelled = true;
        call->fail("cancelled");
    });
}

}  // namespace qnext::agent
