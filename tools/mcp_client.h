// MCP client over the stdio transport (JSON-RPC 2.0, one message per line, protocol version 2025-06-18).
// Lifecycle: spawn the server inside its sandbox policy -> initialize -> notifications/initialized ->
// tools/list (following nextCursor) -> tools/call ... -> shutdown (close stdin, wait, SIGTERM, SIGKILL).
// A per-request timeout sends notifications/cancelled. A server that crashes fails its pending calls and is
// restarted once on the next call; after a second failure its tools report errors. Stdout lines that are not
// JSON-RPC messages are skipped (as the reference SDK client does) and quoted in the error of a call that then
// times out; more than 100 of them count as a crash. Server-to-client requests are answered (ping -> {},
// others -> method not found).
// All methods must be called on the io_context's thread; handlers run there.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox.h"
#include "tools/registry.h"

namespace qnext::tools {

inline constexpr const char* kMcpProtocolVersion = "2025-06-18";

// One entry of {"mcpServers": {name: {...}}}.
struct McpServerConfig {
    std::string name;
    std::vector<std::string> argv;          // command + args
    std::map<std::string, std::string> env;
    std::string policy;                     // "" = registry default policy, "none" = unsandboxed, a name or file
    double timeout_s = 0;                   // default per-call timeout for this server's tools (0 = caller's)
    bool disabled = false;
};

// Parses {"mcpServers": {...}}; throws std::runtime_error naming `where` and the offending key.
std::vector<McpServerConfig> parse_mcp_config(const nlohmann::ordered_json& j, const std::string& where);

// A tool as listed by the server.
struct McpTool {
    std::string name;
    std::string description;
    nlohmann::ordered_json input_schema;  // verbatim inputSchema ($defs, additionalProperties, ... kept)
};

// Renders a tools/call result for the model: text blocks verbatim, other blocks as one-line summaries,
// structuredContent as JSON when there is no text; "(no output)" when empty; isError -> "error: ..." text.
ToolResult mcp_result_to_tool_result(const nlohmann::ordered_json& result);

class McpClient : public std::enable_shared_from_this<McpClient> {
public:
    struct Options {
        std::chrono::milliseconds start_timeout{15000};  // initialize + tools/list
        std::chrono::milliseconds shutdown_grace{2000};   // after closing stdin, and again after SIGTERM
        int max_restarts = 1;
        bool verbose = false;                             // copy the server's stderr and events to our stderr
    };
    using StartHandler = std::function<void(const std::string& error)>;  // "" on success
    using RequestId = std::int64_t;

    McpClient(boost::asio::io_context& io, McpServerConfig config, sandbox::Policy policy,
              std::filesystem::path workspace, Options options);
    ~McpClient();

    const McpServerConfig& config() const { return config_; }
    const std::vector<McpTool>& tools() const { return tools_; }
    const nlohmann::ordered_json& server_info() const { return server_info_; }
    int restarts() const { return restarts_; }
    bool alive() const;

    // Spawns the server and runs the handshake + full tools/list.
    void async_start(StartHandler handler);
    // tools/call. The handler gets exactly one result (timeouts and crashes included). Returns the request id
    // (0 when the call failed immediately).
    RequestId async_call_tool(const std::string& tool, const nlohmann::ordered_json& arguments,
                              std::chrono::milliseconds timeout, ToolHandler handler);
    // Sends notifications/cancelled and completes the call with cancelled = true.
    void cancel(RequestId id, const std::string& reason = "cancelled by the client");
    // Close stdin, wait, SIGTERM, wait, SIGKILL; pending calls fail. `done` runs when the process is gone.
    void async_shutdown(std::function<void()> done);

private:
    enum class State { Stopped, Starting, Ready, Failed, ShuttingDown };
    // How one JSON-RPC request ended.
    struct RpcOutcome {
        enum class Kind { Result, Error, Timeout, Cancelled, Failed } kind = Kind::Failed;
        const nlohmann::ordered_json* value = nullptr;  // result (Result) or error object (Error)
        std::string message;                            // Failed: why (server exited, protocol broken, ...)
    };
    using RpcDone = std::function<void(const RpcOutcome&)>;
    struct Pending {
        RpcDone done;
        std::shared_ptr<boost::asio::steady_timer> timer;
    };
    struct Queued {  // a tools/call waiting for a restart to finish
        RequestId id;
        std::string tool;
        nlohmann::ordered_json arguments;
        std::chrono::milliseconds timeout;
        ToolHandler handler;
    };

    void spawn_and_handshake(bool list_tools, StartHandler handler);
    void fail_start(const StartHandler& handler, const std::string& why);
    void send(const nlohmann::ordered_json& msg);
    void write_next();
    void read_stdout(std::uint64_t gen);
    void read_stderr(std::uint64_t gen);
    void on_line(const std::string& line);
    void on_server_request(const nlohmann::ordered_json& msg);
    void on_notification(const nlohmann::ordered_json& msg);
    void protocol_failure(const std::string& why);
    void on_exit(const std::string& exit_description);
    void maybe_gone();
    void on_process_gone(const std::string& exit_description);
    void fail_all_pending(const std::string& failure);
    void request(RequestId id, const std::string& method, nlohmann::ordered_json params,
                 std::chrono::milliseconds timeout, RpcDone done);
    void on_timeout(RequestId id);
    void list_tools_page(std::string cursor, int page, StartHandler handler);
    void send_call(const Queued& call);
    void restart_then_run_queue();
    void log(const std::string& line) const;
    std::string who() const { return "MCP server '" + config_.name + "'"; }

    boost::asio::io_context& io_;
    McpServerConfig config_;
    sandbox::Policy policy_;
    std::filesystem::path workspace_;
    Options options_;

    State state_ = State::Stopped;
    std::shared_ptr<sandbox::Process> process_;
    std::uint64_t generation_ = 0;  // incremented per spawn; stale callbacks compare against it
    std::deque<std::string> write_queue_;
    bool writing_ = false;
    std::shared_ptr<boost::asio::streambuf> out_buf_;
    std::string stderr_tail_;      // last few KiB of the server's stderr (for error messages)
    std::string breakage_;         // why we killed the server (protocol violation), "" if we did not
    std::string last_failure_;     // how the server last went away
    std::string last_garbage_;     // the last stdout line that was not a JSON-RPC message
    int garbage_lines_ = 0;
    RequestId next_id_ = 1;
    std::map<RequestId, Pending> pending_;
    std::vector<Queued> queued_;
    std::vector<McpTool> tools_;
    nlohmann::ordered_json server_info_;
    int restarts_ = 0;
    bool exited_ = false, out_eof_ = false, err_eof_ = false;  // the process and its two output pipes
    std::string exit_description_;
    std::shared_ptr<boost::asio::steady_timer> eof_timer_, shutdown_timer_, drain_timer_;
    std::function<void()> shutdown_done_;
};

}  // namespace qnext::tools
