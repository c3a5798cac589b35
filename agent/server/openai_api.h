// The OpenAI chat-completions schema, mapped onto the agent's GenerationRequest / GenerationResult.
//
//   ChatRequest r = parse_chat_request(body, defaults);       // throws ApiError (400/404) naming the field
//   ChatCompletion c(r, make_id("chatcmpl"), sink);           // turns backend events into chunks
//   backend.async_generate(r.gen, c.event_handler(), ...);    // c.finish(result) -> final chunk / response
//
// Pure data mapping: no sockets here (agent/server/http_server.cpp serves it), so every rule of the schema is
// unit-tested without a network.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/backend.h"

namespace qnext::agent::server {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with its HTTP status.
class ApiError : public std::runtime_error {
public:
    ApiError(int status, std::string message, std::string param = {}, std::string code = {},
             std::string type = {})
        : std::runtime_error(message), status(status), param(std::move(param)), code(std::move(code)),
          type(type.empty() ? default_type(status) : std::move(type)) {}
    int status;
    std::string param, code, type;
    ojson body() const;

private:
    static std::string default_type(int status);
};

// What the served model does when a request says nothing.
struct ServeDefaults {
    std::string model_name;       // the id in /v1/models; a request naming another model gets 404
    SamplingParams sampling;      // from the model's generation_config.json (else OpenAI's: temperature 1)
    bool thinking = false;        // the template's default (Thinking models: always on)
    bool thinking_fixed = false;  // the template cannot switch thinking off (Qwen3-Next-Thinking)
    int max_tokens_cap = 0;       // > 0: a request may not ask for more (0: up to the context)
};

struct ChatRequest {
    GenerationRequest gen;        // messages normalised (text parts joined, tool-call arguments parsed)
    std::string model;
    bool stream = false;
    bool include_usage = false;   // stream_options.include_usage
    std::vector<std::string> stop;
};

// Validates and maps a /v1/chat/completions body. Unknown fields are ignored (clients send many: user,
// metadata, store, ...); known fields of the wrong type, out of range values and unsupported features
// (n > 1, image content, logprobs) are refused with 400 naming the parameter.
ChatRequest parse_chat_request(const ojson& body, const ServeDefaults& defaults);

// Random ids: "<prefix>-" + 24 hex digits (chatcmpl-..., call_...).
std::string make_id(const std::string& prefix, char sep = '-');

const char* finish_reason_name(FinishReason r);

// One request's answer being built from the backend's streamed events. `emit` receives each chunk (streaming:
// chat.completion.chunk objects, in order); the final response comes from finish(). Stop strings are applied
// here: text that might begin a stop string is held back until it is decided, and a match calls `on_stop`
// (which cancels the generation) and cuts the answer there.
class ChatCompletion {
public:
    using Emit = std::function<void(const ojson& chunk)>;
    ChatCompletion(const ChatRequest& request, std::string id, int64_t created, Emit emit,
                   std::function<void()> on_stop);

    void on_event(const GenerationEvent& ev);
    // The generation ended: emits the closing chunk(s) (streaming) and returns the non-streaming response.
    ojson finish(const GenerationResult& result);
    bool stopped_by_string() const { return stopped_; }
    ojson usage(const GenerationResult& result) const;

private:
    ojson chunk(ojson delta, const ojson& finish_reason = nullptr) const;
    void flush_text(bool all);
    void send(ojson delta);

    std::string id_, model_;
    int64_t created_;
    bool stream_, include_usage_;
    std::vector<std::string> stop_;
    size_t max_stop_ = 0;
    Emit emit_;
    std::function<void()> on_stop_;
    bool role_sent_ = false, stopped_ = false;
    std::string content_, reasoning_;
    size_t content_sent_ = 0;
    struct Call {
        std::string id, name, arguments;
    };
    std::map<int, Call> calls_;
};

}  // namespace qnext::agent::server
