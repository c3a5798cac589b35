// MCP stdio client: JSON-RPC 2.0 over the pipes of a sandboxed server process.
#include "tools/mcp_client.h"
#include "common/json_limits.h"

#include <string.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <set>

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "tools/format.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::size_t kMaxLineBytes = 64u << 20;   // one JSON-RPC message
constexpr std::size_t kStderrTailBytes = 4096;
constexpr int kMaxToolPages = 1000;
constexpr int kMaxGarbageLines = 100;
constexpr std::chrono::milliseconds kDrainWait{500};  // after exit, for the pipes' last bytes

// Versions whose tools API (tools/list paging, tools/call content + isError) we implement.
const std::set<std::string>& accepted_versions() {
    static const std::set<std::string> v = {"2025-06-18", "2025-03-26", "2024-11-05"};
    return v;
}

std::string describe_exit(const sandbox::ExitStatus& st) {
    if (st.signal) {
        const char* abbrev = sigabbrev_np(*st.signal);
        return "was killed by signal " + std::to_string(*st.signal) + (abbrev ? " (SIG" + std::string(abbrev) + ")" : "");
    }
    if (st.exit_code) return "exited with code " + std::to_string(*st.exit_code);
    return "exited";
}

// The last non-empty line of the server's stderr, for error messages.
std::string last_line(const std::string& s) {
    std::size_t end = s.find_last_not_of("\r\n ");
    if (end == std::string::npos) return "";
    std::size_t begin = s.rfind('\n', end);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return s.substr(begin, end + 1 - begin);
}

std::string clip(const std::string& s, std::size_t n) { return s.size() <= n ? s : s.substr(0, n) + "..."; }

bool valid_server_name(const std::string& n) {
    if (n.empty() || n.size() > 64) return false;
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    return true;
}

}  // namespace

std::vector<McpServerConfig> parse_mcp_config(const ojson& j, const std::string& where) {
    if (!j.is_object() || !j.contains("mcpServers") || !j["mcpServers"].is_object())
        throw std::runtime_error(where + ": expected {\"mcpServers\": {name: {\"command\": ...}}}");
    static const std::set<std::string> known = {"command", "args", "env", "policy", "timeout_s", "disabled"};
    std::vector<McpServerConfig> out;
    for (const auto& [name, e] : j["mcpServers"].items()) {
        const std::string at = where + ": mcpServers." + name;
        if (!valid_server_name(name)) throw std::runtime_error(at + ": server names must match [A-Za-z0-9_-]{1,64}");
        if (!e.is_object()) throw std::runtime_error(at + " must be an object");
        if (e.contains("url") || e.contains("type"))
            throw std::runtime_error(at + ": only stdio servers (\"command\") are supported");
        for (const auto& [k, v] : e.items())
            if (!known.count(k))
                throw std::runtime_error(at + ": unknown key \"" + k +
                                         "\" (known: command, args, env, policy, timeout_s, disabled)");
        McpServerConfig c;
        c.name = name;
        if (!e.contains("command") || !e["command"].is_string() || e["command"].get<std::string>().empty())
            throw std::runtime_error(at + ": \"command\" must be a non-empty string");
        c.argv.push_back(e["command"].get<std::string>());
        if (e.contains("args")) {
            if (!e["args"].is_array()) throw std::runtime_error(at + ": \"args\" must be an array of strings");
            for (const auto& a : e["args"]) {
                if (!a.is_string()) throw std::runtime_error(at + ": \"args\" must be an array of strings");
                c.argv.push_back(a.get<std::string>());
            }
        }
        if (e.contains("env")) {
            if (!e["env"].is_object()) throw std::runtime_error(at + ": \"env\" must be an object of strings");
            for (const auto& [k, v] : e["env"].items()) {
                if (!v.is_string()) throw std::runtime_error(at + ": env." + k + " must be a string");
                c.env[k] = v.get<std::string>();
            }
        }
        if (e.contains("policy")) {
            if (!e["policy"].is_string()) throw std::runtime_error(at + ": \"policy\" must be a string");
            c.policy = e["policy"].get<std::string>();
        }
        if (e.contains("timeout_s")) {
            if (!e["timeout_s"].is_number() || e["timeout_s"].get<double>() <= 0)
                throw std::runtime_error(at + ": \"timeout_s\" must be a positive number");
            c.timeout_s = e["timeout_s"].get<double>();
        }
        if (e.contains("disabled")) {
            if (!e["disabled"].is_boolean()) throw std::runtime_error(at + ": \"disabled\" must be true or false");
            c.disabled = e["disabled"].get<bool>();
        }
        out.push_back(std::move(c));
    }
    return out;
}

ToolResult mcp_result_to_tool_result(const ojson& result) {
    ToolResult r;
    std::string text;
    auto add = [&](const std::string& part) {
        if (!text.empty()) text += '\n';
        text += part;
    };
    if (result.contains("content") && result["content"].is_array()) {
        for (const auto& block : result["content"]) {
            if (!block.is_object()) continue;
            const std::string type = block.value("type", "");
            if (type == "text") {
                add(block.value("text", ""));
            } else if (type == "image" || type == "audio") {
                const std::string data = block.contains("data") && block["data"].is_string()
                                             ? block["data"].get<std::string>() : std::string();
                std::size_t bytes = data.size() / 4 * 3;  // base64: 4 characters per 3 bytes, minus the padding
                for (std::size_t i = data.size(); i > 0 && data[i - 1] == '=' && bytes > 0; --i) --bytes;
                add("[" + type + ": " + block.value("mimeType", "unknown type") + ", " + std::to_string(bytes) +
                    " bytes]");
            } else if (type == "resource_link") {
                add("[resource link: " + block.value("uri", "") +
                    (block.contains("name") ? " (" + block.value("name", "") + ")" : "") + "]");
            } else if (type == "resource" && block.contains("resource") && block["resource"].is_object()) {
                const ojson& res = block["resource"];
                if (res.contains("text") && res["text"].is_string()) add(res["text"].get<std::string>());
                else add("[resource: " + res.value("uri", "") + " (" + res.value("mimeType", "binary") + ")]");
            } else {
                add("[" + (type.empty() ? std::string("unknown") : type) + " content]");
            }
        }
    }
    if (text.empty() && result.contains("structuredContent")) text = result["structuredContent"].dump();
    r.is_error = result.value("isError", false);
    if (r.is_error) r.text = error_text(text.empty() ? "the tool reported an error without a message" : text);
    else r.text = text.empty() ? "(no output)" : sanitize_utf8(text);
    r.detail = ojson::object();
    r.detail["isError"] = r.is_error;
    if (result.contains("structuredContent")) r.detail["structuredContent"] = result["structuredContent"];
    return r;
}

McpClient::McpClient(boost::asio::io_context& io, McpServerConfig config, sandbox::Policy policy,
                     std::filesystem::path workspace, Options options)
    : io_(io), config_(std::move(config)), policy_(std::move(policy)), workspace_(std::move(workspace)),
      options_(options) {}

McpClient::~McpClient() {
    ++generation_;  // late callbacks hold only weak pointers; make sure none acts
    if (process_) process_->kill();
}

bool McpClient::alive() const { return process_ && state_ == State::Ready; }

void McpClient::log(const std::string& line) const {
    if (options_.verbose) std::fprintf(stderr, "[mcp %s] %s\n", config_.name.c_str(), line.c_str());
}

void McpClient::async_start(StartHandler handler) {
    if (state_ != State::Stopped) {
        boost::asio::post(io_, [handler] { handler("the server was already started"); });
        return;
    }
    spawn_and_handshake(true, std::move(handler));
}

void McpClient::fail_start(const StartHandler& handler, const std::string& why) {
    state_ = State::Failed;
    last_failure_ = why;
    fail_all_pending(who() + ": " + why);
    if (process_) process_->kill();
    handler(who() + " failed to start: " + why);
}

void McpClient::spawn_and_handshake(bool list_tools, StartHandler handler) {
    state_ = State::Starting;
    const std::uint64_t gen = ++generation_;
    breakage_.clear();
    stderr_tail_.clear();
    exited_ = out_eof_ = err_eof_ = false;
    exit_description_.clear();
    last_garbage_.clear();
    garbage_lines_ = 0;
    write_queue_.clear();
    writing_ = false;
    try {
        sandbox::SpawnRequest req;
        req.argv = config_.argv;
        req.workspace = workspace_;
        req.env = config_.env;
        sandbox::Limits limits = policy_.limits;
        limits.timeout_s = 0;  // long-lived: no wall-clock or CPU budget for the whole server
        limits.cpu_s = 0;
        req.limits = limits;
        process_ = sandbox::Process::spawn(io_, policy_, req);
    } catch (const std::exception& e) {
        process_.reset();
        std::string why = e.what();
        boost::asio::post(io_, [self = shared_from_this(), handler, why] { self->fail_start(handler, why); });
        return;
    }
    out_buf_ = std::make_shared<boost::asio::streambuf>(kMaxLineBytes);
    read_stdout(gen);
    read_stderr(gen);
    std::weak_ptr<McpClient> weak = weak_from_this();
    process_->async_wait([weak, gen](const sandbox::ExitStatus& st) {
        auto self = weak.lock();
        if (!self || gen != self->generation_) return;
        self->on_exit(describe_exit(st));
    });

    ojson params = {{"protocolVersion", kMcpProtocolVersion},
                    {"capabilities", ojson::object()},
                    {"clientInfo", {{"name", "qnext"}, {"version", "0.1.0"}}}};
    request(next_id_++, "initialize", std::move(params), options_.start_timeout,
            [this, self = shared_from_this(), handler, list_tools](const RpcOutcome& o) {
                if (o.kind == RpcOutcome::Kind::Timeout)
                    return fail_start(handler, "no answer to initialize within " +
                                                   std::to_string(options_.start_timeout.count()) + " ms");
                if (o.kind == RpcOutcome::Kind::Error) return fail_start(handler, "initialize failed: " + o.value->dump());
                if (o.kind != RpcOutcome::Kind::Result) return fail_start(handler, o.message);
                const ojson& res = *o.value;
                const std::string version = res.value("protocolVersion", "");
                if (!accepted_versions().count(version))
                    return fail_start(handler, "it speaks MCP protocol version \"" + version + "\"; qnext speaks " +
                                                   kMcpProtocolVersion);
                server_info_ = res.value("serverInfo", ojson::object());
                send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
                const bool has_tools = res.contains("capabilities") && res["capabilities"].is_object() &&
                                       res["capabilities"].contains("tools");
                if (!list_tools || !has_tools) {
                    if (list_tools) tools_.clear();
                    state_ = State::Ready;
                    return handler("");
                }
                tools_.clear();
                list_tools_page("", 0, handler);
            });
}

void McpClient::list_tools_page(std::string cursor, int page, StartHandler handler) {
    ojson params = ojson::object();
    if (!cursor.empty()) params["cursor"] = cursor;
    request(next_id_++, "tools/list", std::move(params), options_.start_timeout,
            [this, self = shared_from_this(), handler, cursor, page](const RpcOutcome& o) {
                if (o.kind == RpcOutcome::Kind::Timeout) return fail_start(handler, "no answer to tools/list");
                if (o.kind == RpcOutcome::Kind::Error) return fail_start(handler, "tools/list failed: " + o.value->dump());
                if (o.kind != RpcOutcome::Kind::Result) return fail_start(handler, o.message);
                const ojson& res = *o.value;
                if (!res.contains("tools") || !res["tools"].is_array())
                    return fail_start(handler, "tools/list result has no \"tools\" array");
                for (const auto& t : res["tools"]) {
                    if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
                        return fail_start(handler, "tools/list returned a tool without a name: " + clip(t.dump(), 200));
                    McpTool tool;
                    tool.name = t["name"].get<std::string>();
                    tool.description = t.value("description", "");
                    tool.input_schema = t.contains("inputSchema") && t["inputSchema"].is_object()
                                            ? t["inputSchema"]
                                            : ojson{{"type", "object"}, {"properties", ojson::object()}};
                    tools_.push_back(std::move(tool));
                }
                const std::string next = res.contains("nextCursor") && res["nextCursor"].is_string()
                                             ? res["nextCursor"].get<std::string>() : "";
                if (next.empty()) {
                    state_ = State::Ready;
                    return handler("");
                }
                if (next == cursor || page + 1 >= kMaxToolPages)
                    return fail_start(handler, "tools/list paging does not end (cursor \"" + clip(next, 80) + "\")");
                list_tools_page(next, page + 1, handler);
            });
}

void McpClient::request(RequestId id, const std::string& method, ojson params, std::chrono::milliseconds timeout,
                        RpcDone done) {
    Pending p;
    p.done = std::move(done);
    p.timer = std::make_shared<boost::asio::steady_timer>(io_, timeout);
    std::weak_ptr<McpClient> weak = weak_from_this();
    p.timer->async_wait([weak, id](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto self = weak.lock()) self->on_timeout(id);
    });
    pending_.emplace(id, std::move(p));
    send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}});
}

void McpClient::on_timeout(RequestId id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    RpcDone done = std::move(it->second.done);
    pending_.erase(it);
    log("request " + std::to_string(id) + " timed out; sending notifications/cancelled");
    send({{"jsonrpc", "2.0"},
          {"method", "notifications/cancelled"},
          {"params", {{"requestId", id}, {"reason", "timed out"}}}});
    RpcOutcome o;
    o.kind = RpcOutcome::Kind::Timeout;
    if (!last_garbage_.empty()) o.message = "the server wrote output that is not JSON-RPC: " + last_garbage_;
    done(o);
}

void McpClient::send(const ojson& msg) {
    if (!process_ || state_ == State::ShuttingDown) return;
    write_queue_.push_back(msg.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n");
    if (!writing_) write_next();
}

void McpClient::write_next() {
    if (write_queue_.empty() || !process_) return;
    writing_ = true;
    auto data = std::make_shared<std::string>(std::move(write_queue_.front()));
    write_queue_.pop_front();
    std::weak_ptr<McpClient> weak = weak_from_this();
    const std::uint64_t gen = generation_;
    boost::asio::async_write(process_->stdin_pipe(), boost::asio::buffer(*data),
                             [weak, gen, data](const boost::system::error_code& ec, std::size_t) {
                                 auto self = weak.lock();
                                 if (!self || gen != self->generation_) return;
                                 self->writing_ = false;
                                 if (ec) {  // EPIPE: the server is gone; its exit handler reports it
                                     self->write_queue_.clear();
                                     return;
                                 }
                                 self->write_next();
                             });
}

void McpClient::read_stdout(std::uint64_t gen) {
    std::weak_ptr<McpClient> weak = weak_from_this();
    auto buf = out_buf_;
    boost::asio::async_read_until(
        process_->stdout_pipe(), *buf, '\n', [weak, gen, buf](const boost::system::error_code& ec, std::size_t n) {
            auto self = weak.lock();
            if (!self || gen != self->generation_) return;
            if (ec) {
                if (ec == boost::asio::error::not_found)
                    return self->protocol_failure("sent a message longer than " + std::to_string(kMaxLineBytes) +
                                                  " bytes");
                // EOF: the server closed its stdout; give it a moment to exit, then make sure it is gone.
                self->out_eof_ = true;
                if (self->exited_) return self->maybe_gone();
                self->eof_timer_ = std::make_shared<boost::asio::steady_timer>(self->io_, std::chrono::seconds(1));
                self->eof_timer_->async_wait([weak, gen](const boost::system::error_code& e) {
                    auto s = weak.lock();
                    if (e || !s || gen != s->generation_ || !s->process_) return;
                    if (s->breakage_.empty()) s->breakage_ = "closed its stdout";
                    s->process_->kill();
                });
                return;
            }
            std::string line(boost::asio::buffers_begin(buf->data()),
                             boost::asio::buffers_begin(buf->data()) + static_cast<std::ptrdiff_t>(n));
            buf->consume(n);
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
            if (!line.empty()) self->on_line(line);
            if (gen == self->generation_ && self->process_ && self->breakage_.empty()) self->read_stdout(gen);
        });
}

void McpClient::read_stderr(std::uint64_t gen) {
    std::weak_ptr<McpClient> weak = weak_from_this();
    auto chunk = std::make_shared<std::array<char, 4096>>();
    process_->stderr_pipe().async_read_some(
        boost::asio::buffer(*chunk), [weak, gen, chunk](const boost::system::error_code& ec, std::size_t n) {
            auto self = weak.lock();
            if (!self || gen != self->generation_) return;
            if (ec) {
                self->err_eof_ = true;
                return self->maybe_gone();
            }
            std::string text(chunk->data(), n);
            self->log("stderr: " + text.substr(0, text.find_last_not_of('\n') + 1));
            self->stderr_tail_ += text;
            if (self->stderr_tail_.size() > kStderrTailBytes)
                self->stderr_tail_.erase(0, self->stderr_tail_.size() - kStderrTailBytes);
            if (self->process_) self->read_stderr(gen);
        });
}

void McpClient::protocol_failure(const std::string& why) {
    if (!breakage_.empty()) return;
    breakage_ = why;
    log("protocol violation: " + why + "; stopping the server");
    if (process_) process_->kill();  // the exit handler fails pending calls with breakage_
}

void McpClient::on_line(const std::string& line) {
    ojson msg = try_parse_json_limited<ojson>(line);   // depth-bounded: the server is not trusted
    if (msg.is_discarded() || !msg.is_object() || msg.value("jsonrpc", "") != "2.0") {
        // Like the reference SDK client, skip stray output (banners, debug prints) instead of dropping the
        // server; pending calls that never get an answer time out and quote it. Endless garbage is fatal.
        last_garbage_ = clip(line, 200);
        log("ignoring output that is not a JSON-RPC message: " + last_garbage_);
        if (++garbage_lines_ > kMaxGarbageLines)
            protocol_failure("wrote more than " + std::to_string(kMaxGarbageLines) +
                             " lines that are not JSON-RPC messages (last: " + last_garbage_ + ")");
        return;
    }
    if (msg.contains("method")) {
        if (msg.contains("id")) on_server_request(msg);
        else on_notification(msg);
        return;
    }
    if (!msg.contains("id") || !msg["id"].is_number_integer()) {
        log("ignoring a response with an id we never sent: " + clip(line, 200));
        return;
    }
    auto it = pending_.find(msg["id"].get<RequestId>());
    if (it == pending_.end()) return;  // answered after a timeout or cancel: ignore
    Pending p = std::move(it->second);
    pending_.erase(it);
    p.timer->cancel();
    RpcOutcome o;
    if (msg.contains("error")) {
        o.kind = RpcOutcome::Kind::Error;
        o.value = &msg["error"];
    } else if (msg.contains("result")) {
        o.kind = RpcOutcome::Kind::Result;
        o.value = &msg["result"];
    } else {
        o.kind = RpcOutcome::Kind::Failed;
        o.message = who() + " sent a response without result or error";
    }
    p.done(o);
}

void McpClient::on_server_request(const ojson& msg) {
    const std::string method = msg.value("method", "");
    if (method == "ping") {
        send({{"jsonrpc", "2.0"}, {"id", msg["id"]}, {"result", ojson::object()}});
        return;
    }
    send({{"jsonrpc", "2.0"},
          {"id", msg["id"]},
          {"error", {{"code", -32601}, {"message", "Method not found: " + method + " (not supported by qnext)"}}}});
}

void McpClient::on_notification(const ojson& msg) {
    const std::string method = msg.value("method", "");
    if (method == "notifications/message") {
        log("log: " + clip(msg.value("params", ojson::object()).dump(), 500));
    } else if (method == "notifications/tools/list_changed") {
        log("the server's tool list changed; the declared tools stay as listed at startup");
    }
}

void McpClient::fail_all_pending(const std::string& failure) {
    std::map<RequestId, Pending> pending;
    pending.swap(pending_);
    std::vector<Queued> queued;
    queued.swap(queued_);
    RpcOutcome o;
    o.kind = RpcOutcome::Kind::Failed;
    o.message = failure;
    for (auto& [id, p] : pending) {
        p.timer->cancel();
        p.done(o);
    }
    for (auto& q : queued) {
        ToolResult r;
        r.is_error = true;
        r.text = error_text(failure);
        q.handler(std::move(r));
    }
}

void McpClient::on_exit(const std::string& exit_description) {
    exited_ = true;
    exit_description_ = exit_description;
    if (out_eof_ && err_eof_) return on_process_gone(exit_description);
    // Read what the server wrote just before exiting (a last response, its last stderr line) first, but do
    // not wait for pipes that some leftover process might keep open.
    std::weak_ptr<McpClient> weak = weak_from_this();
    const std::uint64_t gen = generation_;
    drain_timer_ = std::make_shared<boost::asio::steady_timer>(io_, kDrainWait);
    drain_timer_->async_wait([weak, gen](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || gen != self->generation_ || !self->process_) return;
        self->on_process_gone(self->exit_description_);
    });
}

void McpClient::maybe_gone() {
    if (exited_ && out_eof_ && err_eof_ && process_) {
        if (drain_timer_) drain_timer_->cancel();
        on_process_gone(exit_description_);
    }
}

void McpClient::on_process_gone(const std::string& exit_description) {
    if (!process_) return;  // already handled for this process
    std::string why = breakage_.empty() ? exit_description : breakage_ + " (stopped by qnext)";
    const std::string tail = last_line(stderr_tail_);
    if (breakage_.empty() && !tail.empty()) why += "; last stderr line: " + clip(tail, 300);
    log("gone: " + why);
    process_.reset();
    writing_ = false;
    write_queue_.clear();
    last_failure_ = why;
    if (state_ == State::ShuttingDown) {
        state_ = State::Stopped;
        if (shutdown_timer_) shutdown_timer_->cancel();
        fail_all_pending(who() + " was shut down");
        if (auto done = std::move(shutdown_done_)) done();
        return;
    }
    if (state_ != State::Failed) state_ = State::Stopped;  // Stopped after Ready/Starting: may restart once
    fail_all_pending(who() + " " + why);
}

McpClient::RequestId McpClient::async_call_tool(const std::string& tool, const ojson& arguments,
                                                std::chrono::milliseconds timeout, ToolHandler handler) {
    Queued call{next_id_++, tool, arguments, timeout, std::move(handler)};
    const RequestId id = call.id;
    switch (state_) {
        case State::Ready:
            send_call(call);
            break;
        case State::Starting:
            queued_.push_back(std::move(call));
            break;
        case State::Stopped:
            if (restarts_ < options_.max_restarts) {
                ++restarts_;
                log("restarting after: " + last_failure_);
                queued_.push_back(std::move(call));
                restart_then_run_queue();
                break;
            }
            [[fallthrough]];
        case State::Failed:
        case State::ShuttingDown: {
            ToolResult r;
            r.is_error = true;
            r.text = error_text(who() + " is not available" +
                                (last_failure_.empty() ? std::string() : " (" + last_failure_ + ")") +
                                (restarts_ > 0 ? "; it was already restarted once" : ""));
            boost::asio::post(io_, [h = std::move(call.handler), r]() mutable { h(std::move(r)); });
            return 0;
        }
    }
    return id;
}

void McpClient::restart_then_run_queue() {
    spawn_and_handshake(false, [this, self = shared_from_this()](const std::string& error) {
        if (!error.empty()) {
            state_ = State::Failed;
            fail_all_pending(error);
            return;
        }
        std::vector<Queued> queued;
        queued.swap(queued_);
        for (const Queued& q : queued) send_call(q);
    });
}

void McpClient::send_call(const Queued& call) {
    ToolHandler handler = call.handler;
    const double timeout_s = static_cast<double>(call.timeout.count()) / 1000.0;
    request(call.id, "tools/call", {{"name", call.tool}, {"arguments", call.arguments}}, call.timeout,
            [this, self = shared_from_this(), handler, timeout_s](const RpcOutcome& o) {
                ToolResult r;
                switch (o.kind) {
                    case RpcOutcome::Kind::Result:
                        r = mcp_result_to_tool_result(*o.value);
                        break;
                    case RpcOutcome::Kind::Error:
                        r.is_error = true;
                        r.text = error_text(who() + " rejected the call: " + o.value->value("message", o.value->dump()) +
                                            " (code " + o.value->value("code", ojson(0)).dump() + ")");
                        r.detail = {{"error", *o.value}};
                        break;
                    case RpcOutcome::Kind::Timeout: {
                        ProcessOutcome p;
                        p.timed_out = true;
                        p.timeout_s = timeout_s;
                        r.text = format_process_result(p);
                        if (!o.message.empty()) r.text += "\n" + error_text(o.message);
                        r.is_error = r.timed_out = true;
                        break;
                    }
                    case RpcOutcome::Kind::Cancelled:
                        r.text = error_text("cancelled");
                        r.is_error = r.cancelled = true;
                        break;
                    case RpcOutcome::Kind::Failed:
                        r.text = error_text(o.message);
                        r.is_error = true;
                        break;
                }
                handler(std::move(r));
            });
}

void McpClient::cancel(RequestId id, const std::string& reason) {
    RpcOutcome o;
    o.kind = RpcOutcome::Kind::Cancelled;
    for (auto it = queued_.begin(); it != queued_.end(); ++it) {
        if (it->id != id) continue;
        ToolHandler h = std::move(it->handler);
        queued_.erase(it);
        ToolResult r;
        r.text = error_text("cancelled");
        r.is_error = r.cancelled = true;
        h(std::move(r));
        return;
    }
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending p = std::move(it->second);
    pending_.erase(it);
    p.timer->cancel();
    send({{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", id}, {"reason", reason}}}});
    p.done(o);
}

void McpClient::async_shutdown(std::function<void()> done) {
    if (!process_) {
        state_ = State::Stopped;
        fail_all_pending(who() + " was shut down");
        boost::asio::post(io_, std::move(done));
        return;
    }
    fail_all_pending(who() + " is shutting down");
    state_ = State::ShuttingDown;
    shutdown_done_ = std::move(done);
    write_queue_.clear();
    boost::system::error_code ignored;
    process_->stdin_pipe().close(ignored);  // step 1: EOF on the server's stdin
    shutdown_timer_ = std::make_shared<boost::asio::steady_timer>(io_, options_.shutdown_grace);
    std::weak_ptr<McpClient> weak = weak_from_this();
    const std::uint64_t gen = generation_;
    shutdown_timer_->async_wait([weak, gen](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || gen != self->generation_ || !self->process_) return;
        self->log("did not exit after stdin was closed; sending SIGTERM");
        self->process_->terminate();  // step 2
        self->shutdown_timer_->expires_after(self->options_.shutdown_grace);
        self->shutdown_timer_->async_wait([weak, gen](const boost::system::error_code& ec2) {
            auto s = weak.lock();
            if (ec2 || !s || gen != s->generation_ || !s->process_) return;
            s->log("did not exit after SIGTERM; sending SIGKILL");
            s->process_->kill();  // step 3
        });
    });
}

}  // namespace qnext::tools
