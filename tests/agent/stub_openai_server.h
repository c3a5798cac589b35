// A scripted OpenAI-compatible /chat/completions server on loopback for tests: each POST is answered by a
// script (request body -> list of SSE `data:` payloads, optional delay between them, or an HTTP error).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace qnext::test {

struct StubReply {
    int status = 200;
    std::vector<std::string> events;           // SSE data payloads ("[DONE]" is appended automatically)
    std::chrono::milliseconds delay{0};        // pause before each event
    std::string error_body;                    // body when status != 200
    std::string json_body;                     // non-empty: answer 200 application/json with this body, no SSE
    std::vector<std::string> raw;              // non-empty: write these bytes as they are (no framing, no [DONE])
};

class StubOpenAIServer {
public:
    using Script = std::function<StubReply(const nlohmann::ordered_json& request)>;
    explicit StubOpenAIServer(Script script) : script_(std::move(script)), acceptor_(io_) {
        namespace net = boost::asio;
        net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        thread_ = std::thread([this] { serve(); });
    }
    ~StubOpenAIServer() {
        stop_ = true;
        boost::system::error_code ec;
        // Wake the blocking accept with a throwaway connection.
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket s(io);
        s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
        thread_.join();
    }
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
    std::vector<nlohmann::ordered_json> requests() {
        std::lock_guard lk(mu_);
        return requests_;
    }

    // Helpers to build chunks.
    static std::string delta(const nlohmann::ordered_json& d, const char* finish = nullptr) {
        nlohmann::ordered_json c = {{"id", "x"}, {"object", "chat.completion.chunk"},
                                    {"choices", {{{"index", 0}, {"delta", d}, {"finish_reason", nullptr}}}}};
        if (finish) c["choices"][0]["finish_reason"] = finish;
        return c.dump();
    }
    static std::string text(const std::string& t) { return delta({{"content", t}}); }
    static std::string finish(const char* reason) { return delta(nlohmann::ordered_json::object(), reason); }
    static std::string call_start(int index, const std::string& id, const std::string& name) {
        return delta({{"tool_calls", {{{"index", index}, {"id", id}, {"type", "function"},
                                       {"function", {{"name", name}, {"arguments", ""}}}}}}});
    }
    static std::string call_args(int index, const std::string& fragment) {
        return delta({{"tool_calls", {{{"index", index}, {"function", {{"arguments", fragment}}}}}}});
    }
    // `depth` nested arrays, as JSON text.
    static std::string deep_array(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

private:
    void serve() {
        namespace http = boost::beast::http;
        while (!stop_) {
            boost::asio::ip::tcp::socket sock(io_);
            boost::system::error_code ec;
            acceptor_.accept(sock, ec);
            if (ec || stop_) break;
            boost::beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(sock, buf, req, ec);
            if (ec) continue;
            auto body = nlohmann::ordered_json::parse(req.body(), nullptr, false);
            {
                std::lock_guard lk(mu_);
                requests_.push_back(body);
            }
            StubReply reply = script_(body);
            if (reply.status != 200) {
                http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
                res.set(http::field::content_type, "application/json");
                res.body() = reply.error_body;
                res.prepare_payload();
                http::write(sock, res, ec);
                continue;
            }
            if (!reply.json_body.empty()) {
                http::response<http::string_body> res{http::status::ok, 11};
                res.set(http::field::content_type, "application/json");
                res.body() = reply.json_body;
                res.prepare_payload();
                http::write(sock, res, ec);
                sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
                continue;
            }
            std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            boost::asio::write(sock, boost::asio::buffer(head), ec);
            if (!reply.raw.empty()) {
                for (const auto& bytes : reply.raw) {
                    if (ec) break;
                    if (reply.delay.count()) std::this_thread::sleep_for(reply.delay);
                    boost::asio::write(sock, boost::asio::buffer(bytes), ec);
                }
                sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
                continue;
            }
            reply.events.push_back("[DONE]");
            for (const auto& e : reply.events) {
                if (ec) break;
                if (reply.delay.count()) std::this_thread::sleep_for(reply.delay);
                std::string frame = "data: " + e + "\n\n";
                boost::asio::write(sock, boost::asio::buffer(frame), ec);
            }
            sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        }
    }

    Script script_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mu_;
    std::vector<nlohmann::ordered_json> requests_;
};

}  // namespace qnext::test
