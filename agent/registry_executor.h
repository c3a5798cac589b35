// Adapts the tool registry (tools/registry.h) to the agent loop's ToolExecutor: declarations filtered to
// the tools a task enabled, calls dispatched asynchronously with completions on the loop's io_context.
#pragma once
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "agent/agent_loop.h"
#include "tools/registry.h"

namespace qnext::agent {

class RegistryExecutor : public ToolExecutor {
public:
    // `enabled_builtins`: names of the built-in tools to expose (empty = all); user and MCP tools are always on.
    RegistryExecutor(tools::ToolRegistry& registry, boost::asio::io_context& io,
                     std::vector<std::string> enabled_builtins = {});
    ojson declarations() const override;
    void async_execute(const ToolCall& call, std::chrono::milliseconds timeout,
                       std::function<void(ToolOutcome)> done) override;
    void cancel_all() override;

private:
    bool enabled(const tools::ToolDecl& d) const;
    tools::ToolRegistry& registry_;
    boost::asio::io_context& io_;
    std::set<std::string> builtins_;
    std::mutex mu_;
    std::set<tools::CallId> running_;
};

}  // namespace qnext::agent
