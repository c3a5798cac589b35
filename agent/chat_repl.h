// `qnext chat`: an interactive session with streaming output, reasoning dimmed, tool calls and results
// shown compactly, Ctrl-C cancelling the current generation (not the program), line editing (libedit) and
// the commands /save FILE, /load FILE, /reset, /undo, /help, /quit.
#pragma once
#include <cstdint>
#include <string>

#include <boost/asio/io_context.hpp>

namespace qnext::agent {

class Runtime;

struct ChatOptions {
    bool thinking = false;
    std::string tools_file;   // user tools
    std::string mcp_file;     // MCP servers
    bool no_builtin = false;
    std::string workspace;
    std::string system;
    int max_tokens = 512;
    double temperature = 0.0;
    uint64_t seed = 0;
    bool sandbox_none = false;
};

// Runs until /quit or end of input; returns the process exit code.
int run_chat(boost::asio::io_context& io, Runtime& runtime, const ChatOptions& options);

// Blocks SIGINT in the calling thread, so that threads started afterwards (engine, tool runners) inherit
// the block; run_chat unblocks it in its own thread. Then Ctrl-C is always delivered to the thread that
// waits at the prompt (or runs the turn), never to a worker where it would not interrupt the line editor.
void block_sigint_in_new_threads();

}  // namespace qnext::agent
