// `qnext serve`: an OpenAI-compatible HTTP server on Boost.Beast, on the agent's io_context.
//
// Routes: POST /v1/chat/completions (JSON or SSE), GET /v1/models[/ID], GET /health, GET /metrics,
// POST /tokenize, POST /detokenize. Requests are mapped by openai_api.h onto the same in-process backend the
// CLI uses (constrained tool calls, templates, state reuse); the slots (slots.h) bound concurrency.
// Every connection has a header/body deadline and a body limit; a client that disconnects while its request
// waits or generates cancels it at once.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "agent/server/metrics.h"
#include "agent/server/openai_api.h"
#include "agent/server/slots.h"

namespace qnext {
class Tokenizer;
}

namespace qnext::agent::server {

struct ServeOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;                       // 0: any free port (see Server::port())
    std::string api_key;                        // non-empty: every route but /health needs "Bearer KEY"
    size_t max_body_bytes = size_t{16} << 20;   // larger bodies get 413
    size_t max_header_bytes = 64 << 10;
    std::chrono::milliseconds read_timeout{30000};   // a request's header + body must arrive within this
    std::chrono::milliseconds write_timeout{60000};  // a client that does not read for this long is dropped
    size_t max_connections = 256;               // more get 503 and are closed
    int64_t context = 0;                        // per slot, reported by /v1/models
};

class Server {
public:
    Server(boost::asio::io_context& io, SlotPool& slots, const Tokenizer& tokenizer, ServeDefaults defaults,
           ServeOptions options);
    ~Server();

    void start();                 // binds and listens (throws with the address when it cannot)
    uint16_t port() const;        // the bound port
    // Stops accepting, fails queued requests, cancels running generations and closes idle connections; the
    // io_context runs out of work once the last response has been written.
    void shutdown();
    bool shutting_down() const { return shutting_down_; }

    const Metrics& metrics() const { return metrics_; }

    class Connection;

private:
    friend class Connection;
    void accept();

    boost::asio::io_context& io_;
    SlotPool& slots_;
    const Tokenizer& tok_;
    ServeDefaults defaults_;
    ServeOptions options_;
    boost::asio::ip::tcp::acceptor acceptor_;
    Metrics metrics_;
    std::set<Connection*> connections_;
    boost::asio::thread_pool compile_pool_{2};   // grammar compilation off the io thread
    bool shutting_down_ = false;
};

}  // namespace qnext::agent::server
