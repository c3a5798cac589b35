// Remote backend: drives an OpenAI-compatible /chat/completions endpoint (vLLM, SGLang, llama.cpp server)
// with streaming (server-sent events) over Boost.Beast, so one agent loop can use a cluster that serves
// Qwen3-Next. Plain http:// only; put a TLS-terminating proxy in front of https endpoints.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

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

// Incremental server-sent-events decoder: feed bytes, get complete `data:` payloads. Linear in the bytes fed:
// a line that arrives in many reads is scanned for its newline once (from where the last read ended), not
// from its start on every read. A line or an event longer than `max_line_bytes` stops the decoder (feed
// returns false, error() says why) instead of growing without bound.
class SseDecoder {
public:
    explicit SseDecoder(size_t max_line_bytes = size_t{8} << 20) : max_line_(max_line_bytes) {}

    template <class F>
    bool feed(std::string_view bytes, F&& on_data) {
        if (!error_.empty()) return false;
        buffer_.append(bytes);
        size_t start = 0;
        for (;;) {
            size_t nl = buffer_.find('\n', scanned_);
            if (nl == std::string::npos) break;
            std::string_view line(buffer_.data() + start, nl - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            start = scanned_ = nl + 1;
            if (line.size() > max_line_) return too_long("line", line.size());
            if (line.empty()) {  // event boundary
                if (!data_.empty()) on_data(data_);
                data_.clear();
            } else if (line.rfind("data:", 0) == 0) {
                std::string_view v = line.substr(5);
                if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
                if (!data_.empty()) data_ += '\n';
                data_ += v;
                if (data_.size() > max_line_) return too_long("event", data_.size());
            }  // comments (":") and other fields are ignored
        }
        buffer_.erase(0, start);
        scanned_ = buffer_.size();
        if (buffer_.size() > max_line_) return too_long("line", buffer_.size());
        return true;
    }
    const std::string& error() const { return error_; }

private:
    bool too_long(const char* what, size_t n) {
        error_ = std::string("server sent an event-stream ") + what + " of more than " + std::to_string(max_line_) +
                 " bytes (" + std::to_string(n) + " so far; limit max_line_bytes)";
        buffer_.clear();
        data_.clear();
        return false;
    }
    size_t max_line_;
    size_t scanned_ = 0;  // buffer_[0, scanned_) holds no newline
    std::string buffer_, data_, error_;
};

class OpenAIBackend : public Backend {
public:
    OpenAIBackend(boost::asio::io_context& io, std::string base_url, std::string model, std::string api_key = {},
                  RemoteOptions options = {});
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
    RemoteOptions options_;
    HttpUrl url_;
    std::shared_ptr<Call> current_;
};

}  // namespace qnext::agent
