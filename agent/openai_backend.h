// Remote backend: drives an OpenAI-compatible /chat/completions endpoint (vLLM, SGLang, llama.cpp server)
// with streaming (server-sent events) over Boost.Beast, so one agent loop can use a cluster that serves
// Qwen3-Next. Plain http:// only; put a TLS-terminating proxy in front of https endpoints.
#pragma once
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/backend.h"

namespace qnext::agent {

struct HttpUrl {
    std::string host;
    std::string port;
    std::string path_prefix;  // e.g. "/v1" (no trailing slash)
};
// Parses "http://host[:port][/prefix]"; throws with a clear message for anything else.
HttpUrl parse_http_url(const std::string& url);

// Incremental server-sent-events decoder: feed bytes, get complete `data:` payloads.
class SseDecoder {
public:
    template <class F>
    void feed(std::string_view bytes, F&& on_data) {
        buffer_.append(bytes);
        size_t start = 0;
        for (;;) {
            size_t nl = buffer_.find('\n', start);
            if (nl == std::string::npos) break;
            std::string_view line(buffer_.data() + start, nl - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            start = nl + 1;
            if (line.empty()) {  // event boundary
                if (!data_.empty()) on_data(data_);
                data_.clear();
            } else if (line.rfind("data:", 0) == 0) {
                std::string_view v = line.substr(5);
                if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                if (!data_.empty()) data_ += '\n';
                data_ += v;
            }  // comments (":") and other fields are ignored
        }
        buffer_.erase(0, start);
    }

private:
    std::string buffer_, data_;
};

class OpenAIBackend : public Backend {
public:
    OpenAIBackend(boost::asio::io_context& io, std::string base_url, std::string model, std::string api_key = {});
    ~OpenAIBackend() override;
    std::string name() const override { return "openai:" + base_url_; }
    void async_generate(const GenerationRequest& request, EventHandler on_event, DoneHandler on_done) override;
    void cancel() override;

    // The JSON body sent for a request (exposed for tests).
    ojson make_body(const GenerationRequest& request) const;

private:
    struct Call;
    boost::asio::io_context& io_;
    std::string base_url_, model_, api_key_;
    HttpUrl url_;
    std::shared_ptr<Call> current_;
};

}  // namespace qnext::agent
