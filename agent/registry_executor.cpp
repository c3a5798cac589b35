#include "agent/registry_executor.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace qnext::agent {

RegistryExecutor::RegistryExecutor(tools::ToolRegistry& registry, boost::asio::io_context& io,
                                   std::vector<std::string> enabled_builtins)
    : registry_(registry), io_(io), builtins_(enabled_builtins.begin(), enabled_builtins.end()) {
    for (const std::string& name : builtins_) {
        const tools::ToolDecl* d = registry_.find(name);
        if (!d || d->source != tools::ToolSource::Builtin)
            throw std::runtime_error("unknown built-in tool '" + name + "'");
    }
}

bool RegistryExecutor::enabled(const tools::ToolDecl& d) const {
    return d.source != tools::ToolSource::Builtin || builtins_.empty() || builtins_.count(d.name);
}

ojson RegistryExecutor::declarations() const {
    ojson out = ojson::array();
    for (const auto& d : registry_.tools())
        if (enabled(d)) out.push_back(d.to_openai());
    return out;
}

void RegistryExecutor::async_execute(const ToolCall& call, std::chrono::milliseconds timeout,
                                     std::function<void(ToolOutcome)> done) {
    const tools::ToolDecl* d = registry_.find(call.name);
    if (!d || !enabled(*d)) {
        boost::asio::post(io_, [done, name = call.name] {
            done(ToolOutcome{"error: unknown tool '" + name + "'", true, 0});
        });
        return;
    }
    auto id = std::make_shared<tools::CallId>(0);
    auto finished = std::make_shared<bool>(false);
    // The call runs on the registry's threads: keep the loop's io_context alive until its result is back.
    auto work = std::make_shared<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
        io_.get_executor());
    *id = registry_.async_call(call.name, call.arguments, timeout, io_.get_executor(),
                               [this, done, id, finished, work](tools::ToolResult r) {
                                   work->reset();
                                   *finished = true;
                                   {
                                       std::lock_guard lk(mu_);
                                       running_.erase(*id);
                                   }
                                   done(ToolOutcome{r.text, r.is_error, r.wall_ms});
                               });
    // The handler runs on io_, which is this thread's loop, so it cannot have run yet.
    std::lock_guard lk(mu_);
    if (!*finished) running_.insert(*id);
}

void RegistryExecutor::cancel_all() {
    std::set<tools::CallId> ids;
    {
        std::lock_guard lk(mu_);
        ids = running_;
    }
    for (auto id : ids) registry_.cancel(id);
}

}  // namespace qnext::agent
