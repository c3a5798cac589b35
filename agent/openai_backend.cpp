#include "agent/openai_backend.h"
#include "common/json_limits.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <chrono>
#include <limits>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/json_limits.h"

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

namespace {

// "60 s" / "250 ms", for messages that name a timeout.
std::string format_duration(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
    return std::to_string(d.count()) + " ms";
}

// A JSON value quoted in an error message, bounded.
std::string quote_value(const ojson& v, size_t max = 200) {
    return clip_for_echo(v.dump(-1, ' ', false, ojson::error_handler_t::replace), max);
}

}  // namespace

// One request. Lives until the response is complete, failed or cancelled. Everything the server sends is
// untrusted: each field is type-checked before use (a wrong type ends the generation with an error naming the
// field, never a nlohmann exception out of the io_context), sizes are capped by RemoteOptions, and every
// read waits at most the idle timeout.
struct OpenAIBackend::Call : std::enable_shared_from_this<Call> {
    Call(boost::asio::io_context& io, const RemoteOptions& options, EventHandler ev, DoneHandler done)
        : opt(options), resolver(io), stream(io), sse(options.max_line_bytes), on_event(std::move(ev)),
          on_done(std::move(done)) {}

    RemoteOptions opt;
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
    bool json_reply = false;  // the server answered application/json (a whole chat.completion), not SSE
    std::string json_body;
    bool finished = false;
    bool got_first_token = false;
    Clock::time_point t0 = Clock::now(), t_first;
    std::string finish_reason;
    size_t message_bytes = 0;

    // Say which timeout fired and where: Beast reports only "The socket was closed due to a timeout".
    std::string io_error(const char* during, beast::error_code ec) const {
        if (ec == beast::error::timeout)
            return std::string(during) + ": the server sent nothing for " + format_duration(opt.idle_timeout) +
                   " (idle timeout)";
        return std::string(during) + ": " + ec.message();
    }

    void start(const HttpUrl& url) {
        stream.expires_after(opt.connect_timeout);
        resolver.async_resolve(url.host, url.port,
            [self = shared_from_this(), url](beast::error_code ec, tcp::resolver::results_type results) {
                if (self->finished) return;
                if (ec) return self->fail("resolve: " + ec.message());
                self->stream.async_connect(results, [self, url](beast::error_code ec2, const tcp::endpoint&) {
                    if (self->finished) return;
                    if (ec2 == beast::error::timeout)
                        return self->fail("connect to " + url.host + ":" + url.port + " timed out after " +
                                          format_duration(self->opt.connect_timeout) + " (connect timeout)");
                    if (ec2) return self->fail("connect: " + ec2.message());
                    self->stream.expires_after(self->opt.idle_timeout);
                    http::async_write(self->stream, self->req, [self](beast::error_code ec3, size_t) {
                        if (self->finished) return;
                        if (ec3) return self->fail(self->io_error("write", ec3));
                        // Not boost::none: Beast 1.74 compares Content-Length against the optional and rejects every body.
                        self->parser.body_limit(std::numeric_limits<std::uint64_t>::max());
                        self->stream.expires_after(self->opt.idle_timeout);
                        http::async_read_header(self->stream, self->buffer, self->parser,
                            [self](beast::error_code ec4, size_t) {
                                if (self->finished) return;
                                if (ec4) return self->fail(self->io_error("read header", ec4));
                                const auto& res = self->parser.get();
                                self->http_error = res.result_int() != 200;
                                std::string type(res[http::field::content_type]);
                                for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                                self->json_reply = !self->http_error && type.rfind("application/json", 0) == 0;
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
        // The idle timeout restarts for every read: a slow but live stream is fine, a silent one is not.
        stream.expires_after(opt.idle_timeout);
        // read_some: hand over each piece as it arrives (async_read would wait for a full buffer).
        http::async_read_some(stream, buffer, parser, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (self->finished) return;
            if (ec == http::error::need_buffer) ec = {};
            if (ec) return self->fail(self->io_error("read", ec));
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
        if (json_reply) {
            size_t limit = opt.max_content_bytes + opt.max_line_bytes;
            if (json_body.size() + bytes.size() > limit)
                return fail("server sent a JSON reply of more than " + std::to_string(limit) +
                            " bytes (limit max_content_bytes + max_line_bytes)");
            json_body.append(bytes);
            return;
        }
        if (!sse.feed(bytes, [this](const std::string& data) { on_sse(data); })) fail(sse.error());
    }

    // Parses one piece of server JSON with the nesting bound; `what` names it in the error.
    bool parse_object(std::string_view text, const char* what, ojson& out) {
        std::string why;
        out = try_parse_json_limited<ojson>(text, &why);
        if (out.is_discarded())
            return failed(std::string("server sent invalid JSON in ") + what + " (" + why +
                          "): " + clip_for_echo(text, 200));
        if (!out.is_object())
            return failed(std::string("server sent ") + what + " that is not a JSON object: " + quote_value(out));
        return true;
    }

    void on_sse(const std::string& data) {
        if (finished) return;
        if (data == "[DONE]") return complete();
        ojson j;
        if (!parse_object(data, "the event stream", j)) return;
        if (!on_chunk(j, "delta")) return;
    }

    // One chunk (streaming) or the whole reply (non-streaming: `body` = "message"). Returns false after failing.
    bool on_chunk(const ojson& j, const char* body) {
        if (j.contains("error") && !j["error"].is_null())
            return failed("server error: " + quote_value(j["error"], 4096));
        if (j.contains("usage") && !j["usage"].is_null()) {
            const auto& u = j["usage"];
            if (!u.is_object()) return failed("server sent usage that is not an object: " + quote_value(u));
            for (auto [key, field] : {std::pair{"prompt_tokens", &result.stats.prompt_tokens},
                                      std::pair{"completion_tokens", &result.stats.generated_tokens}}) {
                if (!u.contains(key) || u[key].is_null()) continue;
                const auto& v = u[key];
                if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
                    return failed(std::string("server sent usage.") + key + " that is not a non-negative integer: " +
                                quote_value(v));
                *field = static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX));
            }
            // Servers with a prefix cache (vLLM, SGLang, qnext serve) report the prompt tokens they did not
            // recompute; the stats show them as reused.
            if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object()) {
                const auto& c = u["prompt_tokens_details"];
                if (c.contains("cached_tokens") && c["cached_tokens"].is_number_unsigned())
                    result.stats.reused_tokens = static_cast<int64_t>(
                        std::min<uint64_t>(c["cached_tokens"].get<uint64_t>(), static_cast<uint64_t>(result.stats.prompt_tokens)));
            }
            result.stats.prefill_tokens = result.stats.prompt_tokens - result.stats.reused_tokens;
        }
        if (!j.contains("choices") || j["choices"].is_null()) return true;
        const auto& choices = j["choices"];
        if (!choices.is_array()) return failed("server sent choices that is not an array: " + quote_value(choices));
        if (choices.empty()) return true;
        const auto& choice = choices[0];
        if (!choice.is_object())
            return failed("server sent choices[0] that is not an object: " + quote_value(choice));
        if (choice.contains(body) && !choice[body].is_null()) {
            const auto& delta = choice[body];
            if (!delta.is_object())
                return failed(std::string("server sent choices[0].") + body + " that is not an object: " +
                            quote_value(delta));
            if (!on_delta(delta, body)) return false;
        }
        if (choice.contains("finish_reason") && !choice["finish_reason"].is_null()) {
            if (!choice["finish_reason"].is_string())
                return failed("server sent choices[0].finish_reason that is not a string: " +
                            quote_value(choice["finish_reason"]));
            finish_reason = choice["finish_reason"].get<std::string>();
        }
        return true;
    }

    void first_token() {
        if (got_first_token) return;
        got_first_token = true;
        t_first = Clock::now();
    }

    // The string at obj[key], or nullptr when absent or null; a value of another type fails the call.
    const std::string* string_field(const ojson& obj, const char* key, const std::string& where, bool& ok) {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null()) return nullptr;
        if (!it->is_string()) {
            ok = failed("server sent " + where + "." + key + " that is not a string: " + quote_value(*it));
            return nullptr;
        }
        return it->get_ptr<const std::string*>();
    }

    // Content, reasoning, tool names and arguments of the message, counted together: 1024 calls of 4 MiB each
    // would otherwise be 4 GiB.
    bool add_message_bytes(size_t n) {
        message_bytes += n;
        if (message_bytes <= opt.max_content_bytes) return true;
        return failed("server sent more than " + std::to_string(opt.max_content_bytes) +
                      " bytes of content, reasoning and tool calls in one message (limit max_content_bytes)");
    }

    bool on_delta(const ojson& delta, const char* body) {
        const std::string where = std::string("choices[0].") + body;
        bool ok = true;
        for (const char* key : {"reasoning_content", "reasoning"}) {
            const std::string* t = string_field(delta, key, where, ok);
            if (!ok) return false;
            if (t && !t->empty()) {
                first_token();
                if (!add_message_bytes(t->size())) return false;
                result.reasoning += *t;
                on_event({GenerationEvent::Kind::Reasoning, *t, 0});
                break;
            }
        }
        const std::string* content = string_field(delta, "content", where, ok);
        if (!ok) return false;
        if (content && !content->empty()) {
            first_token();
            if (!add_message_bytes(content->size())) return false;
            result.content += *content;
            on_event({GenerationEvent::Kind::Text, *content, 0});
        }
        if (!delta.contains("tool_calls") || delta["tool_calls"].is_null()) return true;
        const auto& calls = delta["tool_calls"];
        if (!calls.is_array())
            return failed("server sent " + where + ".tool_calls that is not an array: " + quote_value(calls));
        // A whole message (non-streaming) lists its calls without "index": the position is the index.
        const bool whole_message = std::string_view(body) == "message";
        for (size_t pos = 0; pos < calls.size(); ++pos) {
            const auto& tc = calls[pos];
            const std::string at = "tool_calls[" + std::to_string(pos) + "]";
            if (!tc.is_object()) return failed("server sent " + at + " that is not an object: " + quote_value(tc));
            first_token();
            size_t index = whole_message ? pos : 0;
            if (tc.contains("index") && !tc["index"].is_null()) {
                const auto& iv = tc["index"];
                if (!iv.is_number_unsigned() && !(iv.is_number_integer() && iv.get<int64_t>() >= 0))
                    return failed("server sent " + at + ".index that is not a non-negative integer: " +
                                  quote_value(iv));
                index = static_cast<size_t>(std::min<uint64_t>(iv.get<uint64_t>(), SIZE_MAX));
            }
            if (index >= opt.max_tool_calls)
                return failed("server sent tool call index " + std::to_string(index) + " (limit max_tool_calls = " +
                            std::to_string(opt.max_tool_calls) + ")");
            if (result.tool_calls.size() <= index) result.tool_calls.resize(index + 1);
            ToolCall& call = result.tool_calls[index];
            if (const std::string* id = string_field(tc, "id", at, ok)) call.id = clip_for_echo(*id, 256);
            if (!ok) return false;
            if (!tc.contains("function") || tc["function"].is_null()) continue;
            const auto& fn = tc["function"];
            if (!fn.is_object())
                return failed("server sent " + at + ".function that is not an object: " + quote_value(fn));
            const std::string* name = string_field(fn, "name", at + ".function", ok);
            if (!ok) return false;
            if (name && call.name.empty() && !name->empty()) {
                if (!add_message_bytes(name->size())) return false;
                call.name = *name;
                on_event({GenerationEvent::Kind::ToolCallStart, call.name, static_cast<int>(index)});
            }
            const std::string* frag = string_field(fn, "arguments", at + ".function", ok);
            if (!ok) return false;
            if (frag) {
                if (call.arguments_text.size() + frag->size() > opt.max_argument_bytes)
                    return failed("server sent more than " + std::to_string(opt.max_argument_bytes) +
                                " bytes of arguments for tool call " + std::to_string(index) +
                                " (limit max_argument_bytes)");
                if (!add_message_bytes(frag->size())) return false;
                call.arguments_text += *frag;
                on_event({GenerationEvent::Kind::ToolCallArguments, *frag, static_cast<int>(index)});
            }
        }
        return true;
    }

    void complete() {
        if (finished) return;
        if (http_error) {
            return fail("HTTP " + std::to_string(parser.get().result_int()) + " from server: " + error_body);
        }
        if (json_reply) {
            // A server that ignored "stream": true and sent the whole chat.completion at once.
            ojson j;
            if (!parse_object(json_body, "the JSON reply", j)) return;
            if (!on_chunk(j, "message")) return;
        }
        finished = true;
        auto t_end = Clock::now();
        if (finish_reason == "length") {
            result.finish = FinishReason::Length;
            if (!result.tool_calls.empty())   // the last call was cut off; none is executed
                result.truncated_call = result.tool_calls.back().name.empty() ? "?" : result.tool_calls.back().name;
            result.tool_calls.clear();  // a call cut off by max_tokens is never executed
        } else {
            std::vector<ToolCall> complete_calls;
            for (size_t i = 0; i < result.tool_calls.size(); ++i) {
                ToolCall& c = result.tool_calls[i];
                if (c.name.empty()) continue;
                c.arguments = try_parse_json_limited<ojson>(c.arguments_text.empty() ? "{}" : c.arguments_text,
                                                            &c.arguments_error);
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

    bool failed(const std::string& what) {
        fail(what);
        return false;
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

OpenAIBackend::OpenAIBackend(boost::asio::io_context& io, std::string base_url, std::string model, std::string api_key,
                             RemoteOptions options)
    : io_(io), base_url_(std::move(base_url)), model_(std::move(model)), api_key_(std::move(api_key)),
      options_(options), url_(parse_http_url(base_url_)) {}

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
    // The OpenAI API takes function.arguments as a string holding JSON (the official client's types say so); the
    // loop's history keeps parsed objects, so they are serialized here, on the wire only.
    body["messages"] = r.messages;
    for (auto& m : body["messages"]) {
        if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
        for (auto& c : m["tool_calls"]) {
            if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) continue;
            auto& fn = c["function"];
            if (!fn.contains("arguments") || fn["arguments"].is_null()) fn["arguments"] = "{}";
            else if (!fn["arguments"].is_string()) fn["arguments"] = fn["arguments"].dump();
        }
    }
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
    auto call = std::make_shared<Call>(io_, options_, std::move(on_event), std::move(on_done));
    call->req.method(http::verb::post);
    call->req.target(url_.path_prefix + "/chat/completions");
    call->req.version(11);
    call->req.set(http::field::host, url_.host + ":" + url_.port);
    call->req.set(http::field::content_type, "application/json");
    call->req.set(http::field::accept, "text/event-stream");
    call->req.set(http::field::user_agent, "qnext/0.1");
    if (!api_key_.empty()) call->req.set(http::field::authorization, "Bearer " + api_key_);
    call->req.body() = make_body(request).dump(-1, ' ', false, ojson::error_handler_t::replace);
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
