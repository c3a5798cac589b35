// qnext sandbox: run one command (or a long-lived server process) under an isolation policy.
//
// Isolation (Mode::Isolated): fresh user, mount, PID, network (loopback only), IPC and UTS namespaces;
// a new root on tmpfs holding read-only binds of the system (/usr, /lib*, an /etc allow-list), the
// workspace as the only writable host directory (mounted at Policy::workspace_mount), a private
// size-capped tmpfs /tmp, a minimal /dev and a fresh /proc; no capabilities, PR_SET_NO_NEW_PRIVS,
// a libseccomp filter (which also refuses set-user-ID/set-group-ID modes: the workspace is a host
// directory), a Landlock scope (no abstract unix sockets or signals beyond the sandbox), setsid, rlimits,
// an allow-listed environment. When the sandbox has ended, the workspace is swept on the host (no regular
// file keeps S_ISUID/S_ISGID or file capabilities; see ExitStatus::neutralized). A tiny init (pid 1 of the new
// PID namespace) reaps zombies; when the command exits, init exits and the kernel kills everything
// left in the sandbox. The parent can kill the whole sandbox at any time (timeout, cancel), and if
// the parent process dies the sandbox dies with it (control pipe EOF + PDEATHSIG).
//
// Mode::None runs the command on the host with only rlimits, timeout, output capture and process
// group cleanup; it must be requested explicitly and prints a warning on stderr.
//
// Threading: objects are driven by the io_context they were created on; handlers run there.
// Creating a sandbox sets SIGPIPE to SIG_IGN process-wide (writes to a dead child's stdin must fail
// with EPIPE instead of killing qnext).
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/process/async_pipe.hpp>
#include <nlohmann/json.hpp>

namespace qnext::sandbox {

// Thrown (or passed to handlers) when isolation cannot be set up or a policy/request is invalid.
// The sandbox never silently falls back to running unisolated.
class SandboxError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Thrown by Process::spawn when the sandbox was set up but argv[0] could not be executed inside it
// (run()/async_run() turn this into exit code 127 with the reason on stderr, like a shell).
class ExecError : public SandboxError {
public:
    ExecError(const std::string& msg, int err) : SandboxError(msg), errno_value(err) {}
    int errno_value;
};

enum class Mode { Isolated, None };

struct Limits {
    double timeout_s = 30.0;                         // wall clock for the whole sandbox; 0 = none
    double cpu_s = 30.0;                             // RLIMIT_CPU per process (seconds); 0 = none
    std::uint64_t memory_bytes = 1024ull << 20;      // RLIMIT_AS per process; 0 = none
    std::uint32_t max_processes = 64;                // RLIMIT_NPROC (processes+threads in the sandbox)
    std::uint64_t max_file_bytes = 64ull << 20;      // RLIMIT_FSIZE (largest file a process may write)
    std::uint32_t max_open_files = 256;              // RLIMIT_NOFILE
    std::uint64_t tmp_bytes = 64ull << 20;           // size of the private tmpfs /tmp
    std::uint64_t disk_bytes = 256ull << 20;         // the workspace: a tmpfs of this size holding a copy of the
                                                     // host directory, copied back at the end (0 = bind the host
                                                     // directory itself, without a quota)
    std::uint64_t max_inodes = 16384;                // inodes of the workspace tmpfs (files, dirs, symlinks)
    std::uint64_t output_bytes = 64ull << 10;        // captured bytes kept per stream (head + tail)
    std::uint64_t output_hard_bytes = 16ull << 20;   // total stdout+stderr after which the run is killed
    bool operator==(const Limits&) const = default;
};

struct Policy {
    std::string name = "default";
    Mode mode = Mode::Isolated;
    Limits limits;
    bool allow_network = false;                      // keep the host network namespace (+ AF_INET sockets);
                                                     // needs Landlock ABI 6 (Linux 6.12) for the abstract-
                                                     // socket scope, refused with a clear error without it
    std::vector<std::string> ro_paths;               // host dirs/symlinks mapped read-only at the same path
    std::vector<std::string> etc_files;              // /etc entries (files, dirs or symlinks) mapped read-only
    std::vector<std::string> env_pass;               // variable names copied from qnext's environment
    std::map<std::string, std::string> env_set;      // fixed variables (PATH, HOME, LANG, ...)
    std::string workspace_mount = "/workspace";      // where the workspace appears inside (also the cwd)
    std::string hostname = "sandbox";
    std::uint32_t uid = 1000;                        // ids the command runs as inside the sandbox
    std::uint32_t gid = 1000;
    std::uint32_t root_host_uid = 65534;             // when qnext runs as root: host ids the sandbox maps to
    std::uint32_t root_host_gid = 65534;

    static Policy from_json(const nlohmann::json& j);   // unknown keys are an error
    nlohmann::json to_json() const;
    bool operator==(const Policy&) const = default;
};

// The built-in default policy (identical to configs/policies/default.json).
Policy default_policy();
// Load a policy JSON file; keys not given keep the default_policy() values.
Policy load_policy(const std::filesystem::path& file);

// What to run. argv[0] without '/' is searched in the sandbox's PATH.
struct SpawnRequest {
    std::vector<std::string> argv;
    std::filesystem::path workspace;                 // host dir, mounted read-write; must exist
    std::string cwd;                                 // relative to the workspace ("" = workspace root)
    std::map<std::string, std::string> env;          // extra variables (override the policy's)
    std::optional<Limits> limits;                    // overrides policy.limits when set
};

struct RunRequest : SpawnRequest {
    std::string stdin_data;                          // written to stdin, then stdin is closed
};

enum class LimitHit { None, Memory, Cpu, Pids, Fsize, Output, Disk };
const char* to_string(LimitHit l);                   // "memory", "cpu", ... (None -> "none")

// The limits in force for one sandbox, as it was actually set up (see README, "Sandbox").
struct Enforcement {
    // Whole-tree limits (every process of the sandbox together): "cgroup2", "cgroup1", or "none" when no
    // control group could be used (tree_reason says why): then memory, processes and CPU time are limited per
    // process only (rlimits), never unlimited.
    std::string tree = "none";
    std::string tree_reason;
    std::uint64_t tree_memory_bytes = 0;   // memory_bytes + tmp_bytes + disk_bytes (files in tmpfs are RAM)
    std::uint32_t tree_pids = 0;           // processes and threads, the sandbox's own monitor and init included
    double tree_cpu_s = 0;                 // CPU seconds of all processes together (qnext polls the group)
    // Per process (rlimits): address space, CPU seconds, processes, file size, open files.
    std::uint64_t process_memory_bytes = 0;
    double process_cpu_s = 0;
    std::uint32_t process_pids = 0;
    std::uint64_t file_bytes = 0;
    std::uint32_t open_files = 0;
    // The workspace: "tmpfs" (disk_bytes / inodes quota, copied back), or "bind" (the host directory, no
    // quota: limits.disk_mb is 0 or the sandbox mode is none).
    std::string workspace = "bind";
    std::uint64_t disk_bytes = 0, inodes = 0;
    std::uint64_t tmp_bytes = 0;

    nlohmann::json to_json() const;
};

struct RunResult {
    std::optional<int> exit_code;                    // set when the command exited normally
    std::optional<int> signal;                       // set when it was killed by a signal
    bool timed_out = false;
    LimitHit limit = LimitHit::None;
    bool truncated = false;                          // some stdout/stderr bytes were dropped
    bool cancelled = false;                          // killed by RunHandle::cancel()
    std::string stdout_data;
    std::string stderr_data;
    double wall_ms = 0;
    double cpu_ms = 0;                               // user+system of every process in the sandbox
    std::uint64_t memory_peak_bytes = 0;             // the sandbox's peak memory (cgroups only; 0 = unknown)
    Enforcement enforcement;                         // the limits that were in force
    // Workspace entries the sandbox left that were not copied back to the host (tmpfs workspace): "path (why)"
    std::vector<std::string> not_copied_back;
    // Workspace files whose set-user-ID/set-group-ID bits or file capabilities the sandbox left behind and
    // qnext removed when it ended (see ExitStatus::neutralized); also noted at the end of stderr_data.
    std::vector<std::string> neutralized;

    // {"exit_code","signal","timed_out","limit","truncated","stdout","stderr","wall_ms","cpu_ms",
    // "memory_peak_bytes" (null = unknown), "enforcement"}, plus "neutralized" and "not_copied_back" when they
    // are not empty
    nlohmann::json to_json() const;
};

// How a spawned process ended (see Process::async_wait).
struct ExitStatus {
    std::optional<int> exit_code;
    std::optional<int> signal;
    double cpu_ms = 0;
    // When every process of the sandbox is gone, qnext sweeps the workspace on the host: no regular file may
    // keep S_ISUID/S_ISGID or a security.capability xattr (the workspace's files belong to its host owner,
    // root when qnext runs as root). The paths it fixed, and why a part was not swept ("" = all of it).
    std::vector<std::string> neutralized;
    std::string sweep_incomplete;
    // Evidence from the sandbox's control group: which whole-tree limit it reached (None without cgroups).
    LimitHit tree_limit = LimitHit::None;
    std::uint64_t memory_peak_bytes = 0;
    Enforcement enforcement;
    std::vector<std::string> not_copied_back;   // see RunResult
    std::vector<std::string> not_copied_in;     // host workspace entries the sandbox did not get: "path (why)"
};

// A sandboxed process with its stdio as asio pipes (for MCP servers and other long-lived helpers).
class Process : public std::enable_shared_from_this<Process> {
public:
    // Throws SandboxError if the policy/request is invalid or isolation cannot be set up, and if
    // argv[0] cannot be executed inside the sandbox.
    static std::shared_ptr<Process> spawn(boost::asio::io_context& io, const Policy& policy,
                                          const SpawnRequest& request);
    ~Process();   // kills the sandbox if it is still running, and reaps it

    boost::process::async_pipe& stdin_pipe();
    boost::process::async_pipe& stdout_pipe();
    boost::process::async_pipe& stderr_pipe();

    void terminate();   // SIGTERM to every process in the sandbox
    void kill();        // SIGKILL the whole sandbox (idempotent)
    bool running() const;
    const Enforcement& enforcement() const;
    // Called once, after every process of the sandbox is gone.
    void async_wait(std::function<void(const ExitStatus&)> handler);

    struct Impl;
    explicit Process(std::unique_ptr<Impl> impl);
    Impl& impl() { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

// Handle for an asynchronous run.
class RunHandle {
public:
    virtual ~RunHandle() = default;
    virtual void cancel() = 0;   // kill the sandbox; the handler still gets a result (cancelled=true)
};

using RunHandler = std::function<void(std::exception_ptr error, RunResult result)>;

// Runs request on io; never throws: errors (SandboxError) arrive as `error` with an empty result.
std::shared_ptr<RunHandle> async_run(boost::asio::io_context& io, const Policy& policy,
                                     RunRequest request, RunHandler handler);

// Blocking convenience on a private io_context. Throws SandboxError.
RunResult run(const Policy& policy, const RunRequest& request);

// Probe whether isolation works here (user namespaces etc.); returns "" or the reason it does not.
std::string isolation_unavailable_reason();

}  // namespace qnext::sandbox
