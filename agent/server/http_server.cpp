#include "agent/server/http_server.h"

#include <ctime>
#include <optional>

#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/json_limits.h"
#include "model/tokenizer.h"

namespace qnext::agent::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// Constant-time comparison of the presented key with the configured one.
bool same_key(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
    return diff == 0 && !b.empty();
}

}  // namespace

class Server::Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server& srv, tcp::socket socket) : srv_(srv), stream_(std::move(socket)) { srv_.connections_.insert(this); }
    ~Connection() { srv_.connections_.erase(this); }

    void start() { read(); }

    // Server shutdown: idle connections close now; a queued request is failed by the pool; a running
    // generation is cancelled and answered (503) before the connection closes.
    void on_shutdown() {
        if (!busy_) return close();
        if (backend_) backend_->cancel();
    }

private:
    using Request = http::request<http::string_body>;

    // ---- reading requests -------------------------------------------------------------------------------
    void read() {
        busy_ = false;
        if (srv_.shutting_down_) return close();
        parser_.emplace();
        parser_->body_limit(srv_.options_.max_body_bytes);
        parser_->header_limit(static_cast<std::uint32_t>(srv_.options_.max_header_bytes));
        stream_.expires_after(srv_.options_.read_timeout);
        http::async_read_header(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->on_header(ec);
        });
    }

    void on_header(beast::error_code ec) {
        if (ec) return on_read_error(ec);
        busy_ = true;
        auto& h = parser_->get();
        if (beast::iequals(h[http::field::expect], "100-continue")) {
            // curl waits for this before sending a body > 1 KB.
            auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, h.version());
            http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                if (ec) return self->close();
                self->read_body();
            });
            return;
        }
        read_body();
    }

    void read_body() {
        http::async_read(stream_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return self->on_read_error(ec);
            self->stream_.expires_never();
            self->handle(self->parser_->release());
        });
    }

    void on_read_error(beast::error_code ec) {
        if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
            ec == net::error::operation_aborted || ec == net::error::connection_reset)
            return close();
        keep_alive_ = false;
        route_ = "other";
        if (ec == http::error::body_limit)
            return send_error(ApiError(413, "request body larger than " + std::to_string(srv_.options_.max_body_bytes) +
                                                " bytes", {}, "body_too_large"));
        if (ec == http::error::header_limit)
            return send_error(ApiError(431, "request headers larger than " +
                                                std::to_string(srv_.options_.max_header_bytes) + " bytes"));
        if (std::string(ec.category().name()) == "beast.http")
            return send_error(ApiError(400, "malformed HTTP request: " + ec.message()));
        close();
    }

    // ---- routing ----------------------------------------------------------------------------------------
    void handle(Request req) {
        keep_alive_ = req.keep_alive();
        version_ = req.version();
        std::string target(req.target());
        if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
        const auto method = req.method();
        route_ = "other";
        try {
            if (target == "/health") {
                route_ = "/health";
                if (method != http::verb::get) throw ApiError(405, "use GET " + target);
                if (srv_.shutting_down_) return respond(503, dump({{"status", "shutting down"}}));
                return respond(200, dump({{"status", "ok"}}));
            }
            if (!srv_.options_.api_key.empty()) {
                std::string auth(req[http::field::authorization]);
                const std::string bearer = "Bearer ";
                std::string key = auth.rfind(bearer, 0) == 0 ? auth.substr(bearer.size()) : std::string();
                if (!same_key(key, srv_.options_.api_key))
                    throw ApiError(401, auth.empty() ? "missing API key (Authorization: Bearer KEY)" : "invalid API key",
                                   {}, "invalid_api_key");
            }
            if (target == "/v1/chat/completions" || target == "/chat/completions") {
                route_ = "/v1/chat/completions";
                if (method != http::verb::post) throw ApiError(405, "use POST " + target);
                return chat(req.body());
            }
            if (target == "/v1/models" || target == "/models") {
                route_ = "/v1/models";
                if (method != http::verb::get) throw ApiError(405, "use GET " + target);
                return respond(200, dump({{"object", "list"}, {"data", ojson::array({model_card()})}}));
            }
            if (target.rfind("/v1/models/", 0) == 0) {
                route_ = "/v1/models";
                if (method != http::verb::get) throw ApiError(405, "use GET " + target);
                if (target.substr(11) != srv_.defaults_.model_name)
                    throw ApiError(404, "The model '" + target.substr(11) + "' does not exist", "model", "model_not_found");
                return respond(200, dump(model_card()));
            }
            if (target == "/metrics") {
                route_ = "/metrics";
                if (method != http::verb::get) throw ApiError(405, "use GET " + target);
                srv_.metrics_.count(route_, 200);
                return respond(200,
                               srv_.metrics_.render(srv_.slots_.queued(), srv_.slots_.busy(), srv_.slots_.size(),
                                                    srv_.connections_.size()),
                               "text/plain; version=0.0.4", false);
            }
            if (target == "/tokenize" || target == "/detokenize") {
                route_ = target;
                if (method != http::verb::post) throw ApiError(405, "use POST " + target);
                return respond(200, dump(target == "/tokenize" ? tokenize(req.body()) : detokenize(req.body())));
            }
            throw ApiError(404, "no route " + std::string(req.method_string()) + " " + target, {}, "not_found");
        } catch (const ApiError& e) {
            send_error(e);
        } catch (const std::exception& e) {
            send_error(ApiError(500, std::string("internal error: ") + e.what(), {}, "internal_error"));
        }
    }

    ojson model_card() const {
        return {{"id", srv_.defaults_.model_name},
                {"object", "model"},
                {"created", static_cast<int64_t>(std::time(nullptr))},
                {"owned_by", "qnext"},
                {"max_model_len", srv_.options_.context}};
    }

    static ojson parse_body(const std::string& body) {
        try {
            return parse_json_limited<ojson>(body);
        } catch (const std::exception& e) {
            throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), {}, "invalid_json");
        }
    }

    ojson tokenize(const std::string& text) {
        ojson body = parse_body(text);
        if (!body.is_object()) throw ApiError(400, "expected a JSON object");
        std::vector<int32_t> ids;
        if (body.contains("messages")) {
            ojson b = body;
            if (!b.contains("model")) b["model"] = srv_.defaults_.model_name;
            ChatRequest cr = parse_chat_request(b, srv_.defaults_);
            bool gen_prompt = !body.contains("add_generation_prompt") || body["add_generation_prompt"] == true;
            try {
                ids = srv_.slots_.any().prompt_ids(cr.gen, gen_prompt);
            } catch (const std::exception& e) {
                throw ApiError(400, e.what(), "messages");
            }
        } else {
            auto it = body.find("content");
            if (it == body.end() || !it->is_string())
                throw ApiError(400, "'content' (a string) or 'messages' is required", "content");
            bool special = true;
            if (auto p = body.find("parse_special"); p != body.end()) {
                if (!p->is_boolean()) throw ApiError(400, "'parse_special': expected a boolean", "parse_special");
                special = p->get<bool>();
            }
            ids = srv_.tok_.encode(it->get<std::string>(), special);
        }
        return {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", srv_.options_.context}};
    }

    ojson detokenize(const std::string& text) {
        ojson body = parse_body(text);
        auto it = body.is_object() ? body.find("tokens") : body.end();
        if (it == body.end() || !it->is_array()) throw ApiError(400, "'tokens' (an array of token ids) is required", "tokens");
        std::vector<int32_t> ids;
        for (size_t i = 0; i < it->size(); ++i) {
            const ojson& v = (*it)[i];
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= srv_.tok_.vocab_size())
                throw ApiError(400, "'tokens[" + std::to_string(i) + "]': expected a token id in [0, " +
                                        std::to_string(srv_.tok_.vocab_size()) + ")", "tokens");
            ids.push_back(v.get<int32_t>());
        }
        return {{"content", utf8_sanitize(srv_.tok_.decode(ids))}};
    }

    // ---- chat completions -------------------------------------------------------------------------------
    void chat(const std::string& text) {
        arrival_ = Clock::now();
        ojson body = parse_body(text);
        req_ = parse_chat_request(body, srv_.defaults_);
        std::vector<int32_t> prompt;
        try {
            prompt = srv_.slots_.any().prompt_ids(req_.gen, true);
        } catch (const std::exception& e) {
            throw ApiError(400, e.what(), "messages");
        }
        ++generation_;
        watch_disconnect();
        // The output grammar is compiled on a worker thread (a new schema can take a few hundred ms; the io
        // thread keeps serving everyone else meanwhile), then the request asks for a slot.
        net::post(srv_.compile_pool_, [self = shared_from_this(), prompt = std::move(prompt)]() mutable {
            std::string error;
            try {
                self->srv_.slots_.any().grammar_for(self->req_.gen);
            } catch (const std::exception& e) {
                error = e.what();
            }
            // `self` moves to the io thread: the connection is never freed on this worker.
            auto& io = self->srv_.io_;
            net::post(io, [self = std::move(self), prompt = std::move(prompt), error]() mutable {
                self->compiled(std::move(prompt), error);
            });
        });
    }

    void compiled(std::vector<int32_t> prompt, const std::string& error) {
        if (disconnected_ || closed_) return;
        if (!error.empty()) return send_error(ApiError(400, error, {}, "invalid_schema"));
        auto ticket = srv_.slots_.acquire(std::move(prompt), [self = shared_from_this()](InProcessBackend* b) {
            self->start_generation(b);
        });
        if (!ticket) {
            ++srv_.metrics_.rejected_queue_full;
            return send_error(ApiError(srv_.shutting_down_ ? 503 : 429,
                                       srv_.shutting_down_ ? "the server is shutting down"
                                                           : "all " + std::to_string(srv_.slots_.size()) +
                                                                 " slots are busy and the queue is full; retry later",
                                       {}, "queue_full"));
        }
        ticket_ = *ticket;
    }

    void watch_disconnect() {
        stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), g = generation_](
                                                                beast::error_code ec) {
            if (g != self->generation_ || !self->busy_ || self->closed_) return;
            if (ec == net::error::operation_aborted) return;
            beast::error_code ec2;
            if (!ec && self->stream_.socket().available(ec2) > 0) return;   // a pipelined request, not a hang-up
            self->client_gone();
        });
    }

    void client_gone() {
        if (disconnected_) return;
        disconnected_ = true;
        ++srv_.metrics_.disconnects;
        if (backend_) {
            backend_->cancel();   // done() releases the slot and closes
        } else {
            srv_.slots_.withdraw(ticket_);
            close();
        }
    }

    void start_generation(InProcessBackend* b) {
        if (!b) return send_error(ApiError(503, "the server is shutting down", {}, "shutting_down"));
        if (disconnected_ || closed_) {
            srv_.slots_.release(b);
            return;
        }
        backend_ = b;
        queue_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count();
        auto weak = weak_from_this();
        completion_.emplace(
            req_, make_id("chatcmpl"), static_cast<int64_t>(std::time(nullptr)),
            [weak](const ojson& chunk) {
                if (auto self = weak.lock()) self->push_sse("data: " + dump(chunk) + "\n\n");
            },
            [weak] {
                if (auto self = weak.lock())
                    if (self->backend_) self->backend_->cancel();
            });
        if (req_.stream) start_sse();
        try {
            b->async_generate(
                req_.gen,
                [weak](const GenerationEvent& ev) {
                    if (auto self = weak.lock()) self->completion_->on_event(ev);
                },
                [self = shared_from_this()](GenerationResult r) { self->done(std::move(r)); });
        } catch (const std::exception& e) {
            GenerationResult r;
            r.finish = FinishReason::Error;
            r.error = e.what();
            done(std::move(r));
        }
    }

    void done(GenerationResult result) {
        InProcessBackend* b = backend_;
        backend_ = nullptr;
        if (b) srv_.slots_.release(b);
        Metrics& m = srv_.metrics_;
        const auto& st = result.stats;
        m.prompt_tokens += static_cast<uint64_t>(st.prompt_tokens);
        m.cached_tokens += static_cast<uint64_t>(st.reused_tokens);
        m.prefill_tokens += static_cast<uint64_t>(st.prefill_tokens);
        m.generated_tokens += static_cast<uint64_t>(st.generated_tokens);
        if (st.reused_tokens > 0) ++m.cache_hits;
        if (st.generated_tokens > 0) m.ttft_seconds.observe((queue_ms_ + st.ttft_ms) / 1000.0);
        if (st.decode_tok_s > 0) m.decode_tokens_per_second.observe(st.decode_tok_s);
        m.request_seconds.observe(std::chrono::duration<double>(Clock::now() - arrival_).count());
        if (disconnected_ || closed_) return close();

        ojson response;
        try {
            response = completion_->finish(result);
        } catch (const ApiError& e) {
            if (!req_.stream) return send_error(e);
            m.count(route_, e.status);
            push_sse("data: " + dump(e.body()) + "\n\n");
            end_sse();
            return;
        }
        m.count(route_, 200);
        if (!req_.stream) return respond(200, dump(response), "application/json", false);
        end_sse();
    }

    // ---- server-sent events -----------------------------------------------------------------------------
    void start_sse() {
        sse_res_ = std::make_unique<http::response<http::empty_body>>(http::status::ok, version_);
        sse_res_->set(http::field::server, "qnext");
        sse_res_->set(http::field::content_type, "text/event-stream");
        sse_res_->set(http::field::cache_control, "no-cache");
        sse_res_->keep_alive(keep_alive_ && !srv_.shutting_down_);
        sse_res_->chunked(true);
        sse_sr_ = std::make_unique<http::response_serializer<http::empty_body>>(*sse_res_);
        writing_ = true;
        stream_.expires_after(srv_.options_.write_timeout);
        http::async_write_header(stream_, *sse_sr_, [self = shared_from_this()](beast::error_code ec, size_t) {
            self->writing_ = false;
            if (ec) return self->write_failed();
            self->write_next();
        });
    }

    void push_sse(std::string frame) {
        if (disconnected_ || closed_) return;
        outbox_.push_back(std::move(frame));
        write_next();
    }

    void end_sse() {
        push_sse("data: [DONE]\n\n");
        sse_ending_ = true;
        write_next();
    }

    void write_next() {
        if (writing_ || closed_ || !sse_sr_) return;
        if (outbox_.empty()) {
            if (!sse_ending_) return;
            sse_ending_ = false;
            writing_ = true;
            stream_.expires_after(srv_.options_.write_timeout);
            net::async_write(stream_, http::make_chunk_last(), [self = shared_from_this()](beast::error_code ec, size_t) {
                self->writing_ = false;
                self->sse_sr_.reset();
                self->sse_res_.reset();
                if (ec || !self->keep_alive_ || self->srv_.shutting_down_) return self->close();
                self->stream_.expires_never();
                self->read();
            });
            return;
        }
        current_ = std::move(outbox_.front());
        outbox_.pop_front();
        writing_ = true;
        stream_.expires_after(srv_.options_.write_timeout);
        net::async_write(stream_, http::make_chunk(net::buffer(current_)),
                         [self = shared_from_this()](beast::error_code ec, size_t) {
                             self->writing_ = false;
                             if (ec) return self->write_failed();
                             self->write_next();
                         });
    }

    void write_failed() {
        outbox_.clear();
        if (backend_) client_gone();
        else close();
    }

    // ---- plain responses --------------------------------------------------------------------------------
    void send_error(const ApiError& e) {
        srv_.metrics_.count(route_, e.status);
        respond(e.status, dump(e.body()), "application/json", false);
    }

    void respond(int status, std::string body, const std::string& content_type = "application/json",
                 bool count = true) {
        if (closed_) return;
        if (count) srv_.metrics_.count(route_, status);
        auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), version_);
        res->set(http::field::server, "qnext");
        res->set(http::field::content_type, content_type);
        if (status == 401) res->set(http::field::www_authenticate, "Bearer");
        bool keep = keep_alive_ && !srv_.shutting_down_ && status < 500 && status != 413 && status != 431;
        res->keep_alive(keep);
        res->body() = std::move(body);
        res->prepare_payload();
        stream_.expires_after(srv_.options_.write_timeout);
        http::async_write(stream_, *res, [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
            if (ec || !keep) return self->close();
            self->read();
        });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    Server& srv_;
    beast::tcp_stream stream_;
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::string_body>> parser_;
    unsigned version_ = 11;
    bool keep_alive_ = true, busy_ = false, closed_ = false, disconnected_ = false;
    std::string route_ = "other";

    ChatRequest req_;
    uint64_t ticket_ = 0, generation_ = 0;
    InProcessBackend* backend_ = nullptr;
    std::optional<ChatCompletion> completion_;
    Clock::time_point arrival_;
    double queue_ms_ = 0;

    std::unique_ptr<http::response<http::empty_body>> sse_res_;
    std::unique_ptr<http::response_serializer<http::empty_body>> sse_sr_;
    std::deque<std::string> outbox_;
    std::string current_;
    bool writing_ = false, sse_ending_ = false;
};

Server::Server(net::io_context& io, SlotPool& slots, const Tokenizer& tokenizer, ServeDefaults defaults,
               ServeOptions options)
    : io_(io), slots_(slots), tok_(tokenizer), defaults_(std::move(defaults)), options_(std::move(options)),
      acceptor_(io) {}

Server::~Server() = default;

void Server::start() {
    beast::error_code ec;
    auto addr = net::ip::make_address(options_.host, ec);
    if (ec) throw std::runtime_error("serve: --host '" + options_.host + "' is not an IP address");
    tcp::endpoint ep(addr, options_.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep, ec);
    if (ec) throw std::runtime_error("serve: cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                                     ": " + ec.message());
    acceptor_.listen(net::socket_base::max_listen_connections);
    accept();
}

uint16_t Server::port() const { return acceptor_.local_endpoint().port(); }

void Server::accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
            if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
            return accept();   // e.g. EMFILE: keep serving the connections we have
        }
        if (shutting_down_) return;
        if (connections_.size() >= options_.max_connections) {
            // Refuse politely but cheaply: a fixed 503, then close.
            const std::string body =
                R"({"error":{"message":"too many connections","type":"server_error","param":null,"code":"busy"}})";
            auto msg = std::make_shared<std::string>(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
            auto sock = std::make_shared<tcp::socket>(std::move(socket));
            net::async_write(*sock, net::buffer(*msg), [sock, msg](beast::error_code, size_t) {
                beast::error_code e;
                sock->shutdown(tcp::socket::shutdown_both, e);
                sock->close(e);
            });
        } else {
            std::make_shared<Connection>(*this, std::move(socket))->start();
        }
        accept();
    });
}

void Server::shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    slots_.shutdown();
    auto conns = connections_;   // on_shutdown may close (and free) connections
    for (Connection* c : conns)
        if (connections_.count(c)) c->on_shutdown();
}

}  // namespace qnext::agent::server
