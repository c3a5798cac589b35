// Tool registry: built-in tools (configs/tools/builtin.json), user tools (argv templates) and MCP servers,
// executed asynchronously with a per-call timeout and cancellation.
//
// Threading: the registry owns one internal Boost.Asio thread (the "tools thread") that runs sandboxed
// processes, MCP pipes and timers, plus one worker thread for in-process file tools. Completion handlers run
// on the tools thread, or are posted to the executor passed to async_call. Every call completes exactly once;
// tool failures (unknown tool, bad arguments, non-zero exit, MCP isError, timeout, crash) are ToolResults
// with is_error = true and a text for the model, never exceptions. Only configuration errors (bad JSON files,
// duplicate tool names, a workspace that does not exist) throw std::runtime_error from the load_* functions.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

namespace qnext::tools {

enum class ToolSource { Builtin, User, Mcp };

// One tool as the model sees it, plus where it comes from.
struct ToolDecl {
    std::string name;
    std::string description;
    nlohmann::ordered_json parameters;  // JSON Schema of the arguments object, verbatim (incl. $defs etc.)
    ToolSource source = ToolSource::Builtin;
    std::string server;                 // MCP server name when source == Mcp
    std::string remote_name;            // the tool's name on that MCP server (name may carry a prefix)

    // {"type": "function", "function": {"name", "description", "parameters"}}: what the chat template
    // renders and the constrained decoder enforces.
    nlohmann::ordered_json to_openai() const;
};

// The outcome of one call, ready to go into <tool_response>.
struct ToolResult {
    std::string text;           // text for the model (see tools/format.h for the exact formats)
    bool is_error = false;      // the call failed: bad arguments, unknown tool, non-zero exit, isError, ...
    bool timed_out = false;     // the per-call timeout fired (the work was stopped)
    bool cancelled = false;     // cancel()/cancel_all()/shutdown stopped it
    double wall_ms = 0;         // time from async_call to completion
    nlohmann::ordered_json detail;  // machine-readable extras: exit_code/signal/limit for processes,
                                    // structuredContent + content blocks for MCP; null when none
};

using CallId = std::uint64_t;
using ToolHandler = std::function<void(ToolResult)>;

struct RegistryOptions {
    std::filesystem::path workspace;          // the only directory tools may touch; must exist
    std::filesystem::path policy_file;        // sandbox policy for python/shell/user tools;
                                              // empty = <QNEXT_SOURCE_DIR>/configs/policies/default.json
    bool sandbox_none = false;                // run python/shell/user tools WITHOUT isolation (explicit opt-in;
                                              // a warning is printed once)
    std::string python = "/usr/bin/python3";  // interpreter for the `python` tool
    std::string bash = "/bin/bash";           // shell for the `shell` tool
    std::size_t max_text_bytes = 32 * 1024;   // cap on ToolResult::text (head + tail kept, marker in the middle)
    std::chrono::milliseconds mcp_start_timeout{15000};  // initialize + tools/list per server
    bool mcp_prefix_names = true;             // expose MCP tools as "<server>_<tool>"
    bool verbose = false;                     // log MCP server stderr / restarts to our stderr
};

class ToolRegistry {
public:
    explicit ToolRegistry(RegistryOptions options);
    ~ToolRegistry();  // = shutdown()
    ToolRegistry(const ToolRegistry&) = delete;
    ToolRegistry& operator=(const ToolRegistry&) = delete;

    // Built-in declarations: a JSON array in OpenAI function format (configs/tools/builtin.json). Every name
    // must be one of python, shell, read_file, write_file, edit_file, list_dir, grep.
    void load_builtin(const std::filesystem::path& file);
    // Convenience: <QNEXT_SOURCE_DIR>/configs/tools/builtin.json
    void load_default_builtin();
    // User tools: {"tools": [{"name", "description", "parameters", "argv": [...], "timeout_s"?, "stdin"?}]}
    // (see configs/tools/user-tools.example.json). Templates are checked here; bad ones throw.
    void load_user_tools(const std::filesystem::path& file);
    // MCP servers: {"mcpServers": {name: {"command", "args"?, "env"?, "policy"?, "timeout_s"?, "disabled"?}}}.
    // Starts every server, runs initialize -> notifications/initialized -> tools/list (all pages) and registers
    // the tools; blocks until all servers are ready or failed. A server that fails to start is reported in the
    // returned list (one line each) and contributes no tools; it does not throw.
    std::vector<std::string> load_mcp_config(const std::filesystem::path& file);

    // Declarations in registration order.
    const std::vector<ToolDecl>& tools() const;
    const ToolDecl* find(const std::string& name) const;
    // JSON array of to_openai() of every tool: the "tools" of a chat request.
    nlohmann::ordered_json openai_tools() const;

    // Starts a call. timeout <= 0 means the default (30 s; user tools may set their own). The handler is
    // invoked exactly once, on the tools thread (first overload) or via `ex` (second overload).
    CallId async_call(const std::string& name, const nlohmann::ordered_json& arguments,
                      std::chrono::milliseconds timeout, ToolHandler handler);
    CallId async_call(const std::string& name, const nlohmann::ordered_json& arguments,
                      std::chrono::milliseconds timeout, boost::asio::any_io_executor ex, ToolHandler handler);
    // Blocking convenience (must not be called from a completion handler).
    ToolResult call(const std::string& name, const nlohmann::ordered_json& arguments,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

    // Stops a running call: its handler gets cancelled = true, is_error = true. No-op when already done.
    void cancel(CallId id);
    void cancel_all();
    // Cancels everything, shuts MCP servers down (close stdin, wait, SIGTERM, SIGKILL), joins the threads.
    void shutdown();

    const RegistryOptions& options() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace qnext::tools
