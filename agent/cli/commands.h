// The qnext binary's subcommands. Each command group lives in its own cmd_*.cpp and registers its
// subcommands on the CLI11 app here; main.cpp only wires them together and reports errors.
#pragma once
#include <CLI/CLI.hpp>

namespace qnext::cli {

// Thrown by a command that finished but wants a non-zero exit status (e.g. a task whose checks failed);
// main() exits with `code` and prints nothing more.
struct ExitCode {
    int code;
};

// Shared objects handed to every command group.
struct Context {
    CLI::App* app = nullptr;
    CLI::App* bench = nullptr;   // `qnext bench`: groups add nested benchmark subcommands here
    bool quiet = false;          // global --quiet (no progress bars)
};

void add_model_commands(Context& ctx);      // info, make-checkpoint
void add_text_commands(Context& ctx);       // tokenize, detokenize, render
void add_forward_commands(Context& ctx);    // logits, generate, bench (model)
void add_constrain_commands(Context& ctx);  // bench constrain
void add_sandbox_commands(Context& ctx);    // sandbox
void add_agent_commands(Context& ctx);      // run, chat
void add_serve_commands(Context& ctx);      // serve

}  // namespace qnext::cli
