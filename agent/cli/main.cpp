// qnext: one binary, many subcommands. Errors from any command are reported as one line on stderr
// ("qnext: error: ...") with exit code 1; usage errors use CLI11's exit codes.
#include <cstdio>
#include <exception>

#include "agent/cli/commands.h"
#include "kernels/backend.h"

int main(int argc, char** argv) {
    CLI::App app{"qnext: a local agent runtime for Qwen3-Next", "qnext"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "qnext 0.1.0");
    qnext::cli::Context ctx;
    ctx.app = &app;
    app.add_flag("--quiet,-q", ctx.quiet, "suppress progress output on stderr");
    bool verbose = false;
    app.add_flag("--verbose,-v", verbose, "backend notices on stderr (e.g. which compute backend is used)");
    app.parse_complete_callback([&verbose] { qnext::kern::set_verbose(verbose); });
    ctx.bench = app.add_subcommand("bench", "benchmarks (model speed; `bench constrain` for grammar masks)");
    ctx.bench->fallthrough();

    qnext::cli::add_model_commands(ctx);
    qnext::cli::add_text_commands(ctx);
    qnext::cli::add_forward_commands(ctx);
    qnext::cli::add_constrain_commands(ctx);
    qnext::cli::add_sandbox_commands(ctx);
    qnext::cli::add_agent_commands(ctx);
    qnext::cli::add_serve_commands(ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const qnext::cli::ExitCode& e) {
        return e.code;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qnext: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
