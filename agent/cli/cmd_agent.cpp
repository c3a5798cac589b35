// `qnext run TASK.json`: a scripted agent task, checked. `qnext chat`: interactive chat with tools.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "agent/agent_loop.h"
#include "agent/bench_agent.h"
#include "agent/chat_repl.h"
#include "agent/cli/commands.h"
#include "agent/event_printer.h"
#include "agent/registry_executor.h"
#include "agent/runtime.h"
#include "agent/task.h"
#include "tools/registry.h"

namespace qnext::cli {

namespace fs = std::filesystem;
using agent::ojson;

namespace {

struct BackendFlags {
    std::string model;
    std::string backend = "inprocess";
    std::string base_url;
    std::string remote_model = "qwen3-next";
    std::string api_key;
    std::string template_name;
    int64_t context = 0;
    double remote_idle_timeout = 60;
    double remote_connect_timeout = 30;

    void add(CLI::App* cmd) {
        cmd->add_option("--model", model, "model folder or GGUF file (default: the demo model in models/demo)");
        cmd->add_option("--backend", backend, "inprocess (default) or openai (a remote OpenAI-compatible server)")
            ->check(CLI::IsMember({"inprocess", "openai"}));
        cmd->add_option("--base-url", base_url, "openai backend: server base URL, e.g. http://127.0.0.1:8000/v1");
        cmd->add_option("--remote-model", remote_model, "openai backend: model name to request");
        cmd->add_option("--api-key", api_key, "openai backend: bearer token (default: $OPENAI_API_KEY)");
        cmd->add_option("--remote-idle-timeout", remote_idle_timeout,
                        "openai backend: fail when the server sends nothing for this many seconds (default 60)")
            ->check(CLI::Range(0.001, 86400.0));
        cmd->add_option("--remote-connect-timeout", remote_connect_timeout,
                        "openai backend: seconds allowed to connect to the server (default 30)")
            ->check(CLI::Range(0.001, 86400.0));
        cmd->add_option("--template", template_name, "override the chat template: instruct|thinking|hybrid|qwen35")
            ->check(CLI::IsMember({"instruct", "thinking", "hybrid", "qwen35"}));
        cmd->add_option("--context", context,
                        "tokens of context reserved per session (default: min(8192, max_position_embeddings))")
            ->check(CLI::Range(int64_t{16}, int64_t{1} << 24));
    }
    agent::RuntimeOptions options(const std::optional<fs::path>& task_model, bool quiet) const {
        agent::RuntimeOptions o;
        if (!model.empty()) o.model_dir = model;
        else if (task_model) o.model_dir = *task_model;
        o.backend = backend;
        o.base_url = base_url;
        o.remote_model = remote_model;
        o.api_key = api_key;
        auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000 + 0.5)); };
        o.remote.idle_timeout = ms(remote_idle_timeout);
        o.remote.connect_timeout = ms(remote_connect_timeout);
        if (o.api_key.empty())
            if (const char* k = std::getenv("OPENAI_API_KEY")) o.api_key = k;
        if (!template_name.empty()) o.template_override = template_name;
        o.max_context = context;
        o.quiet = quiet;
        if (o.backend == "openai" && o.base_url.empty()) throw std::runtime_error("--backend openai needs --base-url");
        return o;
    }
};

struct RunFlags {
    std::string task_file;
    bool json = false;
    std::string workspace;
    bool sandbox_none = false;
    bool keep_workspace = false;
    int max_tool_calls = 0;      // 0 = the loop's default
    int max_parallel_tools = 0;  // 0 = the loop's default
    BackendFlags backend;
};

std::unique_ptr<tools::ToolRegistry> make_registry(const agent::Task& task, const fs::path& workspace,
                                                   bool sandbox_none, bool verbose) {
    tools::RegistryOptions ro;
    ro.workspace = workspace;
    if (task.policy) ro.policy_file = *task.policy;
    ro.sandbox_none = sandbox_none;
    ro.verbose = verbose;
    auto reg = std::make_unique<tools::ToolRegistry>(ro);
    if (task.builtin_tools) reg->load_default_builtin();
    if (task.user_tools) reg->load_user_tools(*task.user_tools);
    if (task.mcp_servers) {
        for (const std::string& problem : reg->load_mcp_config(*task.mcp_servers))
            std::fprintf(stderr, "qnext: warning: %s\n", problem.c_str());
    }
    return reg;
}

int run_task(const RunFlags& f, bool quiet) {
    agent::Task task = agent::load_task(f.task_file);
    const bool temporary = f.workspace.empty() && !task.workspace;
    fs::path workspace = !f.workspace.empty() ? fs::path(f.workspace)
                         : task.workspace      ? *task.workspace
                                               : agent::make_temp_dir("qnext-ws");
    // A temporary workspace is removed when the task ends (every return below), unless --keep-workspace.
    struct RemoveAtExit {
        fs::path dir;
        bool active;
        ~RemoveAtExit() {
            std::error_code ec;
            if (active) fs::remove_all(dir, ec);
        }
    } cleanup{workspace, temporary && !f.keep_workspace};
    fs::create_directories(workspace);
    agent::write_task_files(task, workspace);

    boost::asio::io_context io;
    agent::Runtime runtime(io, f.backend.options(task.model, quiet || f.json));
    auto backend = runtime.make_backend(task.thinking);
    auto registry = make_registry(task, workspace, f.sandbox_none, !quiet && !f.json);
    agent::RegistryExecutor executor(*registry, io, task.builtin_tools.value_or(std::vector<std::string>{}));
    if (f.max_tool_calls > 0) task.options.limits.max_tool_calls_per_message = f.max_tool_calls;
    if (f.max_parallel_tools > 0) task.options.limits.max_parallel_tools = f.max_parallel_tools;
    auto loop = std::make_shared<agent::AgentLoop>(io, *backend, executor, task.options);
    if (!task.system.empty()) loop->messages().push_back(ojson{{"role", "system"}, {"content", task.system}});

    agent::EventPrinter printer(f.json);
    printer.json_event(ojson{{"event", "start"},
                             {"task", task.name},
                             {"backend", runtime.describe()},
                             {"workspace", workspace.string()},
                             {"tools", executor.declarations().size()},
                             {"tool_names", [&] {
                                  ojson names = ojson::array();
                                  for (const auto& d : executor.declarations())
                                      names.push_back((d.contains("function") ? d["function"] : d).value("name", ""));
                                  return names;
                              }()}});
    if (!f.json && !quiet)
        std::fprintf(stderr, "task %s · %s · workspace %s\n", task.name.c_str(), runtime.describe().c_str(),
                     workspace.string().c_str());

    agent::TurnOutcome last;
    std::vector<std::string> all_tools;
    for (size_t turn = 0; turn < task.messages.size(); ++turn) {
        printer.set_turn(static_cast<int>(turn));
        if (!f.json) std::printf("%s> %s\n", turn ? "\n" : "", task.messages[turn].c_str());
        last = loop->run_user_turn(task.messages[turn], [&](const agent::LoopEvent& ev) { printer.on_event(ev); });
        all_tools.insert(all_tools.end(), last.tools_called.begin(), last.tools_called.end());
        ojson steps = ojson::array();
        for (const auto& s : last.step_stats) steps.push_back(agent::stats_json(s));
        printer.json_event(ojson{{"event", "turn_done"},
                                 {"turn", turn},
                                 {"stop", agent::to_string(last.stop)},
                                 {"final_answer", last.final_answer},
                                 {"steps", last.steps},
                                 {"generated_tokens", last.generated_tokens},
                                 {"error", last.error},
                                 {"step_stats", steps}});
        if (!f.json && last.stop != agent::StopReason::FinalAnswer)
            std::fprintf(stderr, "turn stopped: %s%s%s\n", agent::to_string(last.stop), last.error.empty() ? "" : ": ",
                         last.error.c_str());
        if (last.stop == agent::StopReason::Error) break;
    }

    auto results = agent::evaluate_checks(task.checks, last, all_tools, workspace);
    bool ok = last.stop != agent::StopReason::Error;
    ojson jr = ojson::array();
    for (const auto& r : results) {
        ok = ok && r.passed;
        jr.push_back(ojson{{"check", r.check}, {"passed", r.passed}, {"detail", r.detail}});
        if (!f.json) std::printf("%s %s: %s\n", r.passed ? "PASS" : "FAIL", r.check.c_str(), r.detail.c_str());
    }
    printer.json_event(ojson{{"event", "done"}, {"passed", ok}, {"checks", jr}, {"exit_code", ok ? 0 : 2}});
    if (!f.json) std::printf("%s\n", ok ? "task passed" : "task FAILED");
    registry->shutdown();
    return ok ? 0 : 2;
}

}  // namespace

void add_agent_commands(Context& ctx) {
    auto run_flags = std::make_shared<RunFlags>();
    CLI::App* run = ctx.app->add_subcommand("run", "run a scripted agent task (exit 0 only when every check passes)");
    run->add_option("task", run_flags->task_file, "task file (JSON; see configs/tasks/)")->required()->check(CLI::ExistingFile);
    run->add_flag("--json", run_flags->json, "print one JSON event per line (JSONL)");
    run->add_option("--workspace", run_flags->workspace,
                    "workspace directory (default: the task's, else a new temp dir, removed at the end)");
    run->add_flag("--keep-workspace", run_flags->keep_workspace, "keep the temporary workspace (its path is printed)");
    run->add_flag("--sandbox-none", run_flags->sandbox_none, "run tools WITHOUT isolation (prints a warning)");
    run->add_option("--max-tool-calls", run_flags->max_tool_calls,
                    "tool calls executed per assistant message; the excess get an error result (default 32)")
        ->check(CLI::Range(1, 100000));
    run->add_option("--max-parallel-tools", run_flags->max_parallel_tools,
                    "tool calls executing at once; the rest wait for a slot (default 4)")
        ->check(CLI::Range(1, 1024));
    run_flags->backend.add(run);
    run->callback([run_flags, &ctx] {
        int code = run_task(*run_flags, ctx.quiet);
        if (code != 0) throw ExitCode{code};
    });

    auto bench_flags = std::make_shared<agent::AgentBenchOptions>();
    auto bench_model = std::make_shared<std::string>();
    CLI::App* bench = ctx.bench->add_subcommand("agent", "TTFT per turn of a growing conversation, state reuse on/off");
    bench->add_option("--model", *bench_model, "model folder or GGUF file (default: the demo model)");
    bench->add_option("--history", bench_flags->history_tokens, "grow the conversation to this many tokens (8192)");
    bench->add_option("--turn-tokens", bench_flags->turn_tokens, "new user tokens per turn (512)");
    bench->add_flag("!--skip-no-reuse", bench_flags->no_reuse_baseline,
                    "skip the re-prefill-everything column (the ratio does not need it; saves time on big models)");
    bench->callback([bench_flags, bench_model, &ctx] {
        if (!bench_model->empty()) bench_flags->model_dir = *bench_model;
        bench_flags->quiet = ctx.quiet;
        agent::run_agent_bench(*bench_flags);
    });

    auto chat_flags = std::make_shared<agent::ChatOptions>();
    auto chat_backend = std::make_shared<BackendFlags>();
    CLI::App* chat = ctx.app->add_subcommand("chat", "interactive chat with tools (/help for commands)");
    chat->add_flag("--thinking", chat_flags->thinking, "thinking mode (reasoning shown dimmed)");
    chat->add_option("--tools", chat_flags->tools_file, "user tools file (JSON); built-in tools are always on");
    chat->add_option("--mcp", chat_flags->mcp_file, "MCP servers file ({\"mcpServers\": ...})");
    chat->add_flag("--no-builtin-tools", chat_flags->no_builtin, "do not offer the built-in tools");
    chat->add_option("--workspace", chat_flags->workspace, "workspace directory for the tools (default: a new temp dir)");
    chat->add_option("--system", chat_flags->system, "system prompt");
    chat->add_option("--max-tokens", chat_flags->max_tokens, "generated tokens per assistant message (default 512)");
    chat->add_option("--temperature", chat_flags->temperature, "sampling temperature (default 0 = greedy)");
    chat->add_option("--seed", chat_flags->seed, "sampling seed");
    chat->add_flag("--sandbox-none", chat_flags->sandbox_none, "run tools WITHOUT isolation (prints a warning)");
    chat_backend->add(chat);
    chat->callback([chat_flags, chat_backend, &ctx] {
        boost::asio::io_context io;
        agent::block_sigint_in_new_threads();   // Ctrl-C must reach the prompt's thread, not the engine's
        agent::Runtime runtime(io, chat_backend->options(std::nullopt, ctx.quiet));
        int code = agent::run_chat(io, runtime, *chat_flags);
        if (code != 0) throw ExitCode{code};
    });
}

}  // namespace qnext::cli
