// Internal: one control group per sandbox, so that memory, process count and CPU time are limited for the
// whole process tree (rlimits are per process: five children each under RLIMIT_AS together take five times
// the memory). cgroup v2 (memory.max + memory.swap.max, pids.max, cpu.stat) where the unified hierarchy has
// the controllers and qnext may delegate, else cgroup v1 (memory.limit_in_bytes + memory.memsw.limit_in_bytes,
// pids.max, cpuacct.usage). Where neither can be used, Cgroup::create returns nothing and cgroup_support()
// says why: the sandbox then keeps only the per-process rlimits, and says so (see TreeLimits).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qnext::sandbox::detail {

struct CgroupSupport {
    std::string backend;   // "cgroup2", "cgroup1" or "" (none usable)
    std::string reason;    // backend == "": why not
};

// Probed once per process (creates and removes a scratch group).
const CgroupSupport& cgroup_support();

class Cgroup {
public:
    struct Stats {
        double cpu_ms = 0;               // user+system CPU time of every process that was in the group
        std::uint64_t oom_kills = 0;     // processes the kernel killed at the memory limit
        std::uint64_t memory_max_hits = 0;   // times the group reached its memory limit (reclaim or OOM)
        std::uint64_t pids_max_hits = 0;     // forks refused at the process limit
        std::uint64_t memory_peak = 0;   // bytes (0 when the kernel does not report it)
    };

    // A new group with the given limits (0 = that limit unset) below qnext's own group; nullptr, with the
    // reason in *why_not, when the machine has no usable cgroup support or qnext may not create a group there
    // (e.g. it dropped privileges after the probe). Throws SandboxError when a created group cannot be set up.
    static std::unique_ptr<Cgroup> create(std::uint64_t memory_bytes, std::uint32_t max_pids, std::string* why_not);
    ~Cgroup();   // kills whatever is still in the group and removes it

    // Write-only fds of every hierarchy's cgroup.procs: a process writes "0" to each to join (fork-safe).
    const std::vector<int>& join_fds() const { return join_fds_; }
    void close_join_fds();
    Stats stats() const;
    double cpu_ms() const;
    void kill_all();   // SIGKILL every process in the group
    const std::string& backend() const { return backend_; }
    bool cpu_accounting() const { return !cpu_dir_.empty(); }

    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;

private:
    Cgroup() = default;
    std::string backend_;
    std::vector<std::string> dirs_;   // v2: one; v1: memory, pids, cpuacct
    std::string memory_dir_, pids_dir_, cpu_dir_;
    std::vector<int> join_fds_;
};

}  // namespace qnext::sandbox::detail
