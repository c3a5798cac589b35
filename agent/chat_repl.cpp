#include "agent/chat_repl.h"

#include <editline/readline.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <boost/asio/signal_set.hpp>

#include "agent/agent_loop.h"
#include "agent/event_printer.h"
#include "agent/registry_executor.h"
#include "agent/runtime.h"
#include "agent/session_file.h"
#include "tools/registry.h"

namespace qnext::agent {

namespace {
volatile std::sig_atomic_t g_prompt_interrupted = 0;
extern "C" void on_prompt_sigint(int) { g_prompt_interrupted = 1; }

// libedit's character reader. Waiting in short poll() slices and checking the flag closes the race where
// Ctrl-C lands while libedit is busy between two reads (the terminal has already flushed the typed-ahead
// input, so a plain blocking read would wait for the next key).
extern "C" int prompt_getc(FILE* in) {
    const int fd = fileno(in);
    for (;;) {
        if (g_prompt_interrupted) return EOF;
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, 50);
        if (r < 0 && errno != EINTR) return EOF;
        if (r <= 0) continue;
        unsigned char c;
        const ssize_t n = read(fd, &c, 1);
        if (n == 1) return c;
        if (n == 0 || errno != EINTR) return EOF;
    }
}
}  // namespace

namespace fs = std::filesystem;

namespace {

const char* kHelp =
    "commands: /save FILE  /load FILE  /reset (forget the conversation)  /undo (drop the last exchange)\n"
    "          /tools (the declared tools and their parameters)  /help  /quit\n"
    "          Ctrl-C cancels a running generation; Ctrl-D quits.\n";

// Removes the last user message and everything after it.
bool undo_last_exchange(ojson& messages) {
    for (size_t i = messages.size(); i-- > 0;) {
        if (messages[i].value("role", "") == "user") {
            messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(i), messages.end());
            return true;
        }
    }
    return false;
}

}  // namespace

void block_sigint_in_new_threads() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_chat(boost::asio::io_context& io, Runtime& runtime, const ChatOptions& o) {
    fs::path workspace = o.workspace;
    if (workspace.empty()) workspace = make_temp_dir("qnext-chat");
    fs::create_directories(workspace);

    tools::RegistryOptions ro;
    ro.workspace = workspace;
    ro.sandbox_none = o.sandbox_none;
    tools::ToolRegistry registry(ro);
    if (!o.no_builtin) registry.load_default_builtin();
    if (!o.tools_file.empty()) registry.load_user_tools(o.tools_file);
    if (!o.mcp_file.empty())
        for (const auto& problem : registry.load_mcp_config(o.mcp_file))
            std::fprintf(stderr, "warning: %s\n", problem.c_str());

    auto backend = runtime.make_backend(o.thinking);
    RegistryExecutor executor(registry, io);
    LoopOptions lo;
    lo.thinking = o.thinking;
    lo.limits.max_tokens_per_step = o.max_tokens;
    lo.sampling.temperature = o.temperature;
    lo.sampling.seed = o.seed;
    auto loop = std::make_shared<AgentLoop>(io, *backend, executor, lo);
    auto reset_messages = [&] {
        loop->messages() = ojson::array();
        if (!o.system.empty()) loop->messages().push_back(ojson{{"role", "system"}, {"content", o.system}});
    };
    reset_messages();

    const bool tty = isatty(STDIN_FILENO);
    if (tty) {
        std::fprintf(stderr, "qnext chat · %s · %zu tools · workspace %s\n%s", runtime.describe().c_str(),
                     executor.declarations().size(), workspace.string().c_str(), kHelp);
        rl_getc_function = prompt_getc;   // before using_history(), which initialises libedit
        using_history();
    }
    {   // threads exist now (engine, tools); from here on SIGINT is this thread's
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    }
    EventPrinter printer(false);
    int turn = 0;
    std::vector<std::string> history;   // our copy, to restore libedit's after an interrupt
    for (;;) {
        // At the prompt Ctrl-C abandons the line being typed (libedit then returns NULL, as for Ctrl-D,
        // so the flag tells them apart); Ctrl-D quits.
        g_prompt_interrupted = 0;
        struct sigaction sa {};
        sa.sa_handler = on_prompt_sigint;   // no SA_RESTART: an interrupted read returns, also before libedit
        sigemptyset(&sa.sa_mask);           // has switched the terminal to raw mode
        sigaction(SIGINT, &sa, nullptr);
        rl_getc_function = prompt_getc;
        char* raw = tty ? readline("> ") : nullptr;
        std::string line;
        if (tty) {
            if (g_prompt_interrupted) {   // whatever libedit returns then (NULL or the half-typed line) is dropped
                std::free(raw);
                // libedit leaves its line state half-reset after an interrupted read (a later Ctrl-D
                // would be ignored): start it afresh and put the history back.
                rl_initialize();
                for (const std::string& h : history) add_history(h.c_str());
                std::fputs("\n", stderr);
                continue;
            }
            if (!raw) break;
            line = raw;
            std::free(raw);
        } else {
            char buf[65536];
            if (!std::fgets(buf, sizeof buf, stdin)) break;
            line = buf;
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        }
        if (line.empty()) continue;
        if (tty) {
            add_history(line.c_str());
            history.push_back(line);
        }
        try {
            if (line == "/quit" || line == "/exit") break;
            if (line == "/help") {
                std::fputs(kHelp, stderr);
                continue;
            }
            if (line == "/tools") {
                const ojson decls = executor.declarations();
                if (decls.empty()) std::fputs("no tools declared\n", stderr);
                for (const auto& d : decls) {
                    const ojson& fn = d.contains("function") ? d["function"] : d;
                    std::fprintf(stderr, "%s  %s\n    parameters %s\n", fn.value("name", "?").c_str(),
                                 fn.value("description", "").c_str(), fn.value("parameters", ojson::object()).dump().c_str());
                }
                continue;
            }
            if (line == "/reset") {
                reset_messages();
                std::fputs("conversation cleared\n", stderr);
                continue;
            }
            if (line == "/undo") {
                std::fputs(undo_last_exchange(loop->messages()) ? "last exchange removed\n" : "nothing to undo\n", stderr);
                continue;
            }
            if (line.rfind("/save ", 0) == 0) {
                save_session(line.substr(6), SessionHeader{loop->messages(), o.thinking, backend->name()}, *backend);
                std::fprintf(stderr, "saved to %s\n", line.substr(6).c_str());
                continue;
            }
            if (line.rfind("/load ", 0) == 0) {
                SessionHeader h = load_session(line.substr(6), *backend, o.thinking);
                loop->messages() = h.messages;
                std::fprintf(stderr, "loaded %zu messages from %s\n", h.messages.size(), line.substr(6).c_str());
                continue;
            }
            if (line[0] == '/') {
                std::fprintf(stderr, "unknown command %s\n%s", line.c_str(), kHelp);
                continue;
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            continue;
        }

        // One user turn; Ctrl-C cancels it.
        std::signal(SIGINT, SIG_DFL);
        boost::asio::signal_set sigint(io, SIGINT);
        sigint.async_wait([&](const boost::system::error_code& ec, int) {
            if (!ec) {
                std::fputs("\n^C cancelling…\n", stderr);
                loop->cancel();
            }
        });
        printer.set_turn(turn++);
        const TurnOutcome outcome = loop->run_user_turn(line, [&](const LoopEvent& ev) { printer.on_event(ev); });
        sigint.cancel();
        io.poll();  // let the signal_set's cancellation run
        if (outcome.stop != StopReason::FinalAnswer)
            std::fprintf(stderr, "(stopped: %s%s%s)\n", to_string(outcome.stop), outcome.error.empty() ? "" : ": ",
                         outcome.error.c_str());
    }
    registry.shutdown();
    return 0;
}

}  // namespace qnext::agent
