// Tool registry: declarations, argument checks, dispatch to the sandbox / file tools / MCP clients, per-call
// timeouts and cancellation, all on one internal Asio thread.
#include "tools/registry.h"
#include "common/json_limits.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "sandbox/sandbox.h"
#include "tools/file_tools.h"
#include "tools/format.h"
#include "tools/mcp_client.h"
#include "tools/schema_check.h"
#include "tools/user_tools.h"
#include "tools/workspace.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kDefaultTimeout{30000};
constexpr std::chrono::milliseconds kBackstopSlack{5000};  // after the sandbox's own timeout

const std::set<std::string>& builtin_names() {
    static const std::set<std::string> n = {"python", "shell", "read_file", "write_file", "edit_file", "list_dir",
                                            "grep"};
    return n;
}

ojson read_json_file(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("cannot open " + file.string());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string why;
    ojson j = try_parse_json_limited<ojson>(text, &why);
    if (j.is_discarded()) throw std::runtime_error(file.string() + " is not valid JSON: " + why);
    return j;
}

ToolResult error_result(const std::string& message) {
    ToolResult r;
    r.text = error_text(message);
    r.is_error = true;
    return r;
}

ToolResult from_run_result(const sandbox::RunResult& rr, double timeout_s) {
    ProcessOutcome p;
    p.out = rr.stdout_data;
    p.err = rr.stderr_data;
    p.exit_code = rr.exit_code;
    p.signal = rr.signal;
    p.timed_out = rr.timed_out;
    p.timeout_s = timeout_s;
    p.limit = rr.limit == sandbox::LimitHit::None ? "" : sandbox::to_string(rr.limit);
    p.truncated = rr.truncated;
    ToolResult r;
    r.text = format_process_result(p);
    r.timed_out = rr.timed_out;
    r.cancelled = rr.cancelled;
    r.is_error = rr.timed_out || rr.cancelled || rr.limit != sandbox::LimitHit::None || rr.signal.has_value() ||
                 (rr.exit_code && *rr.exit_code != 0);
    r.detail = {{"exit_code", rr.exit_code ? ojson(*rr.exit_code) : ojson()},
                {"signal", rr.signal ? ojson(*rr.signal) : ojson()},
                {"timed_out", rr.timed_out},
                {"limit", p.limit.empty() ? ojson() : ojson(p.limit)},
                {"truncated", rr.truncated},
                {"wall_ms", rr.wall_ms},
                {"cpu_ms", rr.cpu_ms}};
    return r;
}

// A valid OpenAI function name built from an MCP tool name (other characters become '_').
std::string function_name(const std::string& raw) {
    std::string n;
    for (char c : raw) n += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
    return n.substr(0, 64);
}

}  // namespace

ojson ToolDecl::to_openai() const {
    ojson fn = ojson::object();
    fn["name"] = name;
    fn["description"] = description;
    fn["parameters"] = parameters;
    return ojson{{"type", "function"}, {"function", std::move(fn)}};
}

struct ToolRegistry::Impl {
    struct Call {
        ToolHandler handler;
        std::optional<boost::asio::any_io_executor> ex;
        Clock::time_point start;
        std::shared_ptr<boost::asio::steady_timer> backstop;
        std::shared_ptr<std::atomic<bool>> stop;
        std::shared_ptr<sandbox::RunHandle> run;
        std::shared_ptr<McpClient> mcp;
        McpClient::RequestId mcp_id = 0;
    };

    RegistryOptions opts;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    boost::asio::thread_pool file_pool{1};
    std::thread io_thread;
    std::unique_ptr<Workspace> ws;
    sandbox::Policy policy;

    mutable std::mutex decl_mutex;  // declarations are loaded before calls; the mutex guards the tables anyway
    std::vector<ToolDecl> decls;
    std::map<std::string, std::size_t> index;
    std::map<std::string, UserTool> user_tools;
    std::map<std::string, std::shared_ptr<McpClient>> mcp;           // by server name
    std::map<std::string, std::shared_ptr<McpClient>> mcp_by_tool;   // by registered tool name

    std::map<CallId, Call> calls;  // io thread only
    std::atomic<CallId> next_id{1};
    std::atomic<bool> shut_down{false};

    explicit Impl(RegistryOptions o) : opts(std::move(o)) {
        if (!opts.workspace.empty()) ws = std::make_unique<Workspace>(opts.workspace);
        policy = opts.policy_file.empty() ? sandbox::default_policy() : sandbox::load_policy(opts.policy_file);
        if (opts.sandbox_none) policy.mode = sandbox::Mode::None;
        io_thread = std::thread([this] { io.run(); });
    }

    void add_decl(ToolDecl d) {
        std::lock_guard lock(decl_mutex);
        if (index.count(d.name)) throw std::runtime_error("duplicate tool name \"" + d.name + "\"");
        index[d.name] = decls.size();
        decls.push_back(std::move(d));
    }

    const ToolDecl* find(const std::string& name) const {
        std::lock_guard lock(decl_mutex);
        auto it = index.find(name);
        return it == index.end() ? nullptr : &decls[it->second];
    }

    void finish(CallId id, ToolResult r) {
        auto it = calls.find(id);
        if (it == calls.end()) return;  // already completed (timeout, cancel): late results are dropped
        Call c = std::move(it->second);
        calls.erase(it);
        if (c.backstop) c.backstop->cancel();
        if (c.stop) c.stop->store(true);
        r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - c.start).count();
        r.text = cap_text(std::move(r.text), opts.max_text_bytes);
        if (c.ex) {
            boost::asio::post(*c.ex, [h = std::move(c.handler), r = std::move(r)]() mutable { h(std::move(r)); });
            return;
        }
        try {
            c.handler(std::move(r));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "qnext: warning: a tool completion handler threw: %s\n", e.what());
        }
    }

    // Completes the call with a timeout if nothing else completed it first.
    void arm_backstop(CallId id, std::chrono::milliseconds after, double timeout_s) {
        auto it = calls.find(id);
        if (it == calls.end()) return;
        auto timer = std::make_shared<boost::asio::steady_timer>(io, after);
        it->second.backstop = timer;
        timer->async_wait([this, id, timeout_s](const boost::system::error_code& ec) {
            if (ec) return;
            auto it = calls.find(id);
            if (it == calls.end()) return;
            abort_underlying(it->second, "timed out");
            ProcessOutcome p;
            p.timed_out = true;
            p.timeout_s = timeout_s;
            ToolResult r;
            r.text = format_process_result(p);
            r.is_error = r.timed_out = true;
            finish(id, std::move(r));
        });
    }

    void abort_underlying(Call& c, const std::string& reason) {
        if (c.stop) c.stop->store(true);
        if (c.run) c.run->cancel();
        if (c.mcp && c.mcp_id) c.mcp->cancel(c.mcp_id, reason);
    }

    void start(CallId id, const std::string& name, const ojson& args, std::chrono::milliseconds timeout) {
        if (shut_down) return finish(id, error_result("the tool registry is shut down"));
        const ToolDecl* d = find(name);
        if (!d) {
            std::string names;
            for (const auto& t : decls) names += (names.empty() ? "" : ", ") + t.name;
            return finish(id, error_result("unknown tool: " + name + " (available: " + names + ")"));
        }
        if (!args.is_object()) return finish(id, error_result("arguments for " + name + " must be a JSON object"));
        // Arguments that did not come through a bounded parse (built in code, by an embedding program) are
        // bounded here: schema checks, result formatting and MCP encoding recurse once per level.
        if (json_depth(args) > kMaxJsonDepth)
            return finish(id, error_result("arguments for " + name + " nest deeper than " +
                                           std::to_string(kMaxJsonDepth) + " levels"));
        if (d->source != ToolSource::Mcp)
            if (std::string e = check_against_schema(d->parameters, args); !e.empty())
                return finish(id, error_result("invalid arguments for " + name + ": " + e));
        const bool explicit_timeout = timeout.count() > 0;
        if (!explicit_timeout) timeout = kDefaultTimeout;
        const double timeout_s = static_cast<double>(timeout.count()) / 1000.0;
        switch (d->source) {
            case ToolSource::Builtin:
                if (is_file_tool(name)) return start_file_tool(id, name, args, timeout, timeout_s);
                if (name == "python")
                    return start_process(id, {opts.python, "-c", args["code"].get<std::string>()}, "", timeout_s);
                return start_process(id, {opts.bash, "-c", args["command"].get<std::string>()}, "", timeout_s);
            case ToolSource::User: {
                const UserTool& tool = user_tools.at(name);
                ExpandedCall call;
                try {
                    call = expand_user_tool(tool, args);
                } catch (const ArgumentError& e) {
                    return finish(id, error_result(std::string("invalid arguments for ") + name + ": " + e.what()));
                }
                const double s = tool.timeout_s > 0 && !explicit_timeout ? tool.timeout_s : timeout_s;
                return start_process(id, std::move(call.argv), std::move(call.stdin_data), s);
            }
            case ToolSource::Mcp: return start_mcp(id, *d, args, explicit_timeout, timeout, timeout_s);
        }
    }

    void start_process(CallId id, std::vector<std::string> argv, std::string stdin_data, double timeout_s) {
        if (!ws) return finish(id, error_result("no workspace is configured for running commands"));
        sandbox::RunRequest req;
        req.argv = std::move(argv);
        req.workspace = ws->root();
        req.stdin_data = std::move(stdin_data);
        sandbox::Limits limits = policy.limits;
        limits.timeout_s = timeout_s;
        req.limits = limits;
        auto handle = sandbox::async_run(io, policy, std::move(req),
                                         [this, id, timeout_s](std::exception_ptr err, sandbox::RunResult rr) {
                                             if (err) {
                                                 try {
                                                     std::rethrow_exception(err);
                                                 } catch (const std::exception& e) {
                                                     return finish(id, error_result(e.what()));
                                                 }
                                             }
                                             finish(id, from_run_result(rr, timeout_s));
                                         });
        auto it = calls.find(id);
        if (it == calls.end()) return;  // completed synchronously
        it->second.run = std::move(handle);
        arm_backstop(id, std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)) + kBackstopSlack, timeout_s);
    }

    void start_file_tool(CallId id, const std::string& name, const ojson& args, std::chrono::milliseconds timeout,
                         double timeout_s) {
        if (!ws) return finish(id, error_result("no workspace is configured for file tools"));
        auto stop = std::make_shared<std::atomic<bool>>(false);
        calls[id].stop = stop;
        arm_backstop(id, timeout, timeout_s);
        boost::asio::post(file_pool, [this, id, name, args, stop] {
            ToolResult r = run_file_tool(name, *ws, args, *stop);
            boost::asio::post(io, [this, id, r = std::move(r)]() mutable { finish(id, std::move(r)); });
        });
    }

    void start_mcp(CallId id, const ToolDecl& d, const ojson& args, bool explicit_timeout,
                   std::chrono::milliseconds timeout, double timeout_s) {
        auto client = mcp_by_tool.at(d.name);
        if (client->config().timeout_s > 0 && !explicit_timeout) {
            timeout = std::chrono::milliseconds(static_cast<long>(client->config().timeout_s * 1000));
            timeout_s = client->config().timeout_s;
        }
        calls[id].mcp = client;
        auto rid = client->async_call_tool(d.remote_name, args, timeout,
                                           [this, id](ToolResult r) { finish(id, std::move(r)); });
        auto it = calls.find(id);
        if (it == calls.end()) return;
        it->second.mcp_id = rid;
        arm_backstop(id, timeout + kBackstopSlack, timeout_s);
    }

    void cancel(CallId id) {
        auto it = calls.find(id);
        if (it == calls.end()) return;
        abort_underlying(it->second, "cancelled by the client");
        ToolResult r = error_result("cancelled");
        r.cancelled = true;
        finish(id, std::move(r));
    }

    void cancel_all() {
        std::vector<CallId> ids;
        for (const auto& [id, c] : calls) ids.push_back(id);
        for (CallId id : ids) cancel(id);
    }

    sandbox::Policy resolve_policy(const std::string& spec, const std::filesystem::path& config_dir) const {
        if (spec.empty()) return policy;
        if (spec == "none") {
            sandbox::Policy p = policy;
            p.mode = sandbox::Mode::None;
            return p;
        }
        if (spec.find('/') != std::string::npos || spec.ends_with(".json")) {
            std::filesystem::path p(spec);
            return sandbox::load_policy(p.is_absolute() ? p : config_dir / p);
        }
        const std::filesystem::path named = std::filesystem::path(QNEXT_SOURCE_DIR) / "configs" / "policies" /
                                            (spec + ".json");
        if (std::filesystem::exists(named)) return sandbox::load_policy(named);
        if (spec == "default") return sandbox::default_policy();
        throw std::runtime_error("unknown sandbox policy \"" + spec + "\" (no " + named.string() + ")");
    }

    std::vector<std::string> load_mcp(const std::filesystem::path& file) {
        const std::vector<McpServerConfig> servers = parse_mcp_config(read_json_file(file), file.string());
        std::vector<std::string> errors;
        std::vector<std::shared_ptr<McpClient>> started;
        McpClient::Options mo;
        mo.start_timeout = opts.mcp_start_timeout;
        mo.verbose = opts.verbose;
        for (const McpServerConfig& s : servers) {
            if (s.disabled) continue;
            if (mcp.count(s.name)) throw std::runtime_error(file.string() + ": MCP server \"" + s.name + "\" is already loaded");
            sandbox::Policy p = resolve_policy(s.policy, file.parent_path());
            const std::filesystem::path workspace = ws ? ws->root() : std::filesystem::temp_directory_path();
            started.push_back(std::make_shared<McpClient>(io, s, std::move(p), workspace, mo));
        }
        // Start every server concurrently on the io thread and wait for all handshakes.
        std::promise<std::vector<std::string>> all;
        auto fut = all.get_future();
        boost::asio::post(io, [&] {
            auto left = std::make_shared<std::size_t>(started.size());
            auto errs = std::make_shared<std::vector<std::string>>(started.size());
            if (started.empty()) return all.set_value({});
            for (std::size_t i = 0; i < started.size(); ++i)
                started[i]->async_start([&all, left, errs, i](const std::string& e) {
                    (*errs)[i] = e;
                    if (--*left == 0) all.set_value(*errs);
                });
        });
        const std::vector<std::string> start_errors = fut.get();
        for (std::size_t i = 0; i < started.size(); ++i) {
            auto& client = started[i];
            mcp[client->config().name] = client;
            if (!start_errors[i].empty()) {
                errors.push_back(start_errors[i]);
                continue;
            }
            for (const McpTool& t : client->tools()) {
                ToolDecl d;
                d.name = function_name(opts.mcp_prefix_names ? client->config().name + "_" + t.name : t.name);
                d.description = t.description;
                d.parameters = t.input_schema;
                d.source = ToolSource::Mcp;
                d.server = client->config().name;
                d.remote_name = t.name;
                try {
                    add_decl(d);
                    mcp_by_tool[d.name] = client;
                } catch (const std::runtime_error& e) {
                    errors.push_back("MCP server '" + d.server + "': tool \"" + t.name + "\" skipped: " + e.what());
                }
            }
        }
        return errors;
    }

    void shutdown() {
        if (!io_thread.joinable()) return;
        if (io.get_executor().running_in_this_thread())
            throw std::logic_error("ToolRegistry::shutdown called from a completion handler");
        shut_down = true;
        std::promise<void> done;
        auto fut = done.get_future();
        boost::asio::post(io, [&] {
            cancel_all();
            auto left = std::make_shared<std::size_t>(mcp.size());
            if (mcp.empty()) return done.set_value();
            for (auto& [name, client] : mcp)
                client->async_shutdown([&done, left] {
                    if (--*left == 0) done.set_value();
                });
        });
        fut.wait();
        file_pool.join();
        work.reset();
        io.stop();
        io_thread.join();
        mcp_by_tool.clear();
        mcp.clear();
    }
};

ToolRegistry::ToolRegistry(RegistryOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

ToolRegistry::~ToolRegistry() { shutdown(); }

const RegistryOptions& ToolRegistry::options() const { return impl_->opts; }

void ToolRegistry::load_builtin(const std::filesystem::path& file) {
    const ojson j = read_json_file(file);
    if (!j.is_array()) throw std::runtime_error(file.string() + ": expected a JSON array of tool declarations");
    for (std::size_t i = 0; i < j.size(); ++i) {
        const ojson& e = j[i];
        const std::string at = file.string() + ": [" + std::to_string(i) + "]";
        if (!e.is_object() || e.value("type", "") != "function" || !e.contains("function") ||
            !e["function"].is_object())
            throw std::runtime_error(at + ": expected {\"type\": \"function\", \"function\": {...}}");
        const ojson& f = e["function"];
        if (!f.contains("name") || !f["name"].is_string() || !builtin_names().count(f["name"].get<std::string>()))
            throw std::runtime_error(at + ": \"name\" must be one of python, shell, read_file, write_file, edit_file, "
                                          "list_dir, grep");
        if (!f.contains("parameters") || !f["parameters"].is_object())
            throw std::runtime_error(at + ": \"parameters\" must be a JSON Schema object");
        ToolDecl d;
        d.name = f["name"].get<std::string>();
        d.description = f.value("description", "");
        d.parameters = f["parameters"];
        d.source = ToolSource::Builtin;
        impl_->add_decl(std::move(d));
    }
}

void ToolRegistry::load_default_builtin() {
    load_builtin(std::filesystem::path(QNEXT_SOURCE_DIR) / "configs" / "tools" / "builtin.json");
}

void ToolRegistry::load_user_tools(const std::filesystem::path& file) {
    std::vector<UserTool> tools = parse_user_tools(read_json_file(file), file.string());
    for (UserTool& t : tools) {
        impl_->add_decl(t.decl);
        std::lock_guard lock(impl_->decl_mutex);
        impl_->user_tools[t.decl.name] = std::move(t);
    }
}

std::vector<std::string> ToolRegistry::load_mcp_config(const std::filesystem::path& file) {
    if (impl_->io.get_executor().running_in_this_thread())
        throw std::logic_error("load_mcp_config called from a completion handler");
    return impl_->load_mcp(file);
}

const std::vector<ToolDecl>& ToolRegistry::tools() const { return impl_->decls; }

const ToolDecl* ToolRegistry::find(const std::string& name) const { return impl_->find(name); }

ojson ToolRegistry::openai_tools() const {
    std::lock_guard lock(impl_->decl_mutex);
    ojson out = ojson::array();
    for (const ToolDecl& d : impl_->decls) out.push_back(d.to_openai());
    return out;
}

CallId ToolRegistry::async_call(const std::string& name, const ojson& arguments, std::chrono::milliseconds timeout,
                                ToolHandler handler) {
    const CallId id = impl_->next_id++;
    if (impl_->shut_down) {  // the tools thread is gone: complete right here
        handler(error_result("the tool registry is shut down"));
        return id;
    }
    boost::asio::post(impl_->io, [impl = impl_.get(), id, name, arguments, timeout, h = std::move(handler)]() mutable {
        Impl::Call c;
        c.handler = std::move(h);
        c.start = Clock::now();
        impl->calls.emplace(id, std::move(c));
        impl->start(id, name, arguments, timeout);
    });
    return id;
}

CallId ToolRegistry::async_call(const std::string& name, const ojson& arguments, std::chrono::milliseconds timeout,
                                boost::asio::any_io_executor ex, ToolHandler handler) {
    const CallId id = impl_->next_id++;
    if (impl_->shut_down) {
        boost::asio::post(ex, [h = std::move(handler)] { h(error_result("the tool registry is shut down")); });
        return id;
    }
    boost::asio::post(impl_->io, [impl = impl_.get(), id, name, arguments, timeout, ex = std::move(ex),
                                  h = std::move(handler)]() mutable {
        Impl::Call c;
        c.handler = std::move(h);
        c.ex = std::move(ex);
        c.start = Clock::now();
        impl->calls.emplace(id, std::move(c));
        impl->start(id, name, arguments, timeout);
    });
    return id;
}

ToolResult ToolRegistry::call(const std::string& name, const ojson& arguments, std::chrono::milliseconds timeout) {
    if (impl_->io.get_executor().running_in_this_thread())
        throw std::logic_error("ToolRegistry::call made from a completion handler");
    std::promise<ToolResult> p;
    auto fut = p.get_future();
    async_call(name, arguments, timeout, [&p](ToolResult r) { p.set_value(std::move(r)); });
    return fut.get();
}

void ToolRegistry::cancel(CallId id) {
    boost::asio::post(impl_->io, [impl = impl_.get(), id] { impl->cancel(id); });
}

void ToolRegistry::cancel_all() {
    boost::asio::post(impl_->io, [impl = impl_.get()] { impl->cancel_all(); });
}

void ToolRegistry::shutdown() { impl_->shutdown(); }

}  // namespace qnext::tools
