// `qnext sandbox`: run one command under a sandbox policy and print the result.
// `qnext bench sandbox`: median wall time of one sandboxed `python3 -c pass`.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

#include "agent/cli/commands.h"
#include "agent/runtime.h"
#include "sandbox/sandbox.h"

namespace qnext::cli {
namespace {
namespace sb = qnext::sandbox;
namespace fs = std::filesystem;

// A private temporary directory removed on scope exit (the default workspace).
class TempDir {
public:
    TempDir() : path_(agent::make_temp_dir("qnext-sandbox")) {}
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

struct SandboxOptions {
    std::string workspace, policy_file, mode = "isolated";
    double timeout_s = -1, cpu_s = -1, memory_mb = -1, disk_mb = -1;
    int pids = -1;
    long long inodes = -1;
    bool allow_net = false, json = false;
    std::vector<std::string> command;
};

sb::Policy make_policy(const SandboxOptions& o) {
    sb::Policy p = o.policy_file.empty() ? sb::default_policy() : sb::load_policy(o.policy_file);
    if (o.mode == "none") p.mode = sb::Mode::None;
    if (o.timeout_s >= 0) p.limits.timeout_s = o.timeout_s;
    if (o.cpu_s >= 0) p.limits.cpu_s = o.cpu_s;
    if (o.memory_mb >= 0) p.limits.memory_bytes = std::uint64_t(o.memory_mb * 1024 * 1024);
    if (o.pids > 0) p.limits.max_processes = std::uint32_t(o.pids);
    if (o.disk_mb >= 0) p.limits.disk_bytes = std::uint64_t(o.disk_mb * 1024 * 1024);
    if (o.inodes > 0) p.limits.max_inodes = std::uint64_t(o.inodes);
    if (o.allow_net) p.allow_network = true;
    return p;
}

void run_sandbox(const SandboxOptions& o) {
    if (o.command.empty()) throw std::runtime_error("sandbox: no command given (usage: qnext sandbox -- CMD ARGS...)");
    sb::Policy policy = make_policy(o);
    std::unique_ptr<TempDir> temp;
    sb::RunRequest req;
    req.argv = o.command;
    if (o.workspace.empty()) {
        temp = std::make_unique<TempDir>();
        req.workspace = temp->path();
    } else {
        req.workspace = o.workspace;
    }
    if (!isatty(STDIN_FILENO))
        req.stdin_data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    sb::RunResult r = sb::run(policy, req);
    if (o.json) {
        std::cout << r.to_json().dump() << std::endl;
        return;
    }
    std::fwrite(r.stdout_data.data(), 1, r.stdout_data.size(), stdout);
    std::fflush(stdout);
    std::fwrite(r.stderr_data.data(), 1, r.stderr_data.size(), stderr);
    std::string how = r.exit_code ? "exit " + std::to_string(*r.exit_code)
                                  : "signal " + std::to_string(r.signal.value_or(0));
    std::fprintf(stderr, "qnext sandbox: %s%s%s%s, wall %.1f ms, cpu %.1f ms\n", how.c_str(),
                 r.timed_out ? ", timed out" : "",
                 r.limit != sb::LimitHit::None ? (std::string(", limit ") + sb::to_string(r.limit)).c_str() : "",
                 r.truncated ? ", output truncated" : "", r.wall_ms, r.cpu_ms);
    std::fflush(stderr);
    int code = r.exit_code ? *r.exit_code : 128 + r.signal.value_or(0);
    std::exit(code);
}

struct BenchOptions {
    int runs = 20;
    bool json = false;
    std::string python = "/usr/bin/python3";
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_sandbox(const BenchOptions& o) {
    if (o.runs < 1) throw std::runtime_error("bench sandbox: --runs must be >= 1");
    TempDir ws;
    sb::RunRequest req;
    req.argv = {o.python, "-c", "pass"};
    req.workspace = ws.path();
    auto measure = [&](const sb::Policy& p) {
        std::vector<double> wall, cpu;
        sb::run(p, req);   // warm-up (page cache, seccomp program)
        for (int i = 0; i < o.runs; ++i) {
            sb::RunResult r = sb::run(p, req);
            if (r.exit_code != 0)
                throw std::runtime_error("bench sandbox: `" + o.python + " -c pass` failed: " + r.stderr_data);
            wall.push_back(r.wall_ms);
            cpu.push_back(r.cpu_ms);
        }
        return std::pair{median(wall), median(cpu)};
    };
    sb::Policy iso = sb::default_policy();
    sb::Policy none = sb::default_policy();
    none.mode = sb::Mode::None;
    auto [iso_wall, iso_cpu] = measure(iso);
    std::fflush(stderr);
    auto [none_wall, none_cpu] = measure(none);
    if (o.json) {
        std::cout << nlohmann::json{{"runs", o.runs},
                                    {"sandboxed_median_wall_ms", iso_wall},
                                    {"sandboxed_median_cpu_ms", iso_cpu},
                                    {"unsandboxed_median_wall_ms", none_wall},
                                    {"unsandboxed_median_cpu_ms", none_cpu},
                                    {"overhead_ratio", iso_wall / none_wall}}
                         .dump()
                  << std::endl;
        return;
    }
    std::printf("python3 -c pass, %d runs each (same process, same workspace)\n", o.runs);
    std::printf("  sandboxed   : median wall %.2f ms, median cpu %.2f ms\n", iso_wall, iso_cpu);
    std::printf("  --sandbox none: median wall %.2f ms, median cpu %.2f ms\n", none_wall, none_cpu);
    std::printf("  isolation overhead: %.2fx wall (%.2f ms)\n", iso_wall / none_wall, iso_wall - none_wall);
}

}  // namespace

void add_sandbox_commands(Context& ctx) {
    auto opts = std::make_shared<SandboxOptions>();
    CLI::App* cmd = ctx.app->add_subcommand(
        "sandbox", "run one command in the sandbox and print its result (qnext sandbox [opts] -- CMD ARGS...)");
    cmd->add_option("--workspace", opts->workspace,
                    "host directory mounted read-write at /workspace (default: a fresh temporary directory)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--timeout", opts->timeout_s, "wall-clock limit in seconds (0 = none)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--cpu", opts->cpu_s, "CPU seconds per process and for the whole sandbox (0 = none)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--memory", opts->memory_mb,
                    "memory in MiB: address space per process, and (with cgroups) the whole sandbox's processes (0 = none)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--pids", opts->pids, "maximum number of processes/threads")->check(CLI::PositiveNumber);
    cmd->add_option("--disk", opts->disk_mb,
                    "workspace quota in MiB (a tmpfs copied back at the end; 0 = bind the directory, no quota)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--inodes", opts->inodes, "workspace inode quota (files, directories, symlinks)")
        ->check(CLI::Range(16LL, 1LL << 31));
    cmd->add_flag("--allow-net", opts->allow_net, "keep the host network (default: loopback only)");
    cmd->add_flag("--json", opts->json, "print exactly one JSON object with the result");
    cmd->add_option("--policy", opts->policy_file, "policy JSON file (see configs/policies/)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--sandbox", opts->mode, "isolated (default) or none (NO isolation; prints a warning)")
        ->check(CLI::IsMember({"isolated", "none"}));
    cmd->add_option("command", opts->command, "command and arguments (after --)")->required();
    cmd->callback([opts] { run_sandbox(*opts); });

    auto bopts = std::make_shared<BenchOptions>();
    CLI::App* bench = ctx.bench->add_subcommand("sandbox", "median wall time of one sandboxed `python3 -c pass`");
    bench->add_option("--runs", bopts->runs, "runs per configuration (default 20)");
    bench->add_option("--python", bopts->python, "python interpreter (default /usr/bin/python3)");
    bench->add_flag("--json", bopts->json, "print one JSON object");
    bench->callback([bopts] { bench_sandbox(*bopts); });
}

}  // namespace qnext::cli
