// Internal: everything the forked sandbox processes need, computed in the parent before fork.
// The child side (child.cpp) runs between fork and exec of a possibly multi-threaded parent, so it
// may only make async-signal-safe calls: it reads these precomputed strings and never allocates.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::detail {

// One step of the filesystem setup inside the new mount namespace (after the first pivot_root the
// host root is visible at /oldroot; destinations are paths in the new root).
struct FsStep {
    enum Kind {
        Dir,        // mkdir dst (parents must exist; steps are ordered)
        Symlink,    // symlink(text, dst)
        BindDir,    // mkdir dst; bind src -> dst (recursive); read-only unless writable
        BindFile,   // create empty dst; bind src -> dst; read-only unless writable
        WriteFile,  // create dst with text (mode 0644)
        Tmpfs,      // mount tmpfs at dst with options text
        Proc,       // mount a fresh procfs at dst
        MoveMount,  // attach the detached mount tree `fd` at dst (idmapped workspace)
    };
    Kind kind;
    std::string src, dst, text;
    bool writable = false;
    bool devices = false;   // keep device access (binds of /dev nodes)
    int fd = -1;
    std::string what;       // human description for error messages
};

// Messages on the status pipe (child -> parent); fixed size, written atomically.
struct StatusMsg {
    enum Kind : std::int32_t { SetupFailed = 1, ExecFailed = 2, CommandExited = 3, SandboxDone = 4 };
    std::int32_t kind = 0;
    std::int32_t step = -1;       // SetupFailed: index into Plan::steps, or a negative Stage
    std::int32_t err = 0;         // errno
    std::int32_t status = 0;      // wait status (CommandExited: the command; SandboxDone: init)
    std::int64_t cpu_us = 0;      // SandboxDone: user+system time of the whole sandbox
    std::int64_t maxrss_kb = 0;
};

// Stages outside the fs steps (negative step values in SetupFailed).
enum Stage : std::int32_t {
    StSetgroups = -1, StSetns = -2, StSecurebits = -3, StSetid = -4, StUnshare = -5, StForkInit = -6,
    StPidfd = -7, StMountPrivate = -8, StRootTmpfs = -9, StPivot = -10, StUmountOld = -11,
    StRootRo = -12, StHostname = -13, StLoopback = -14, StForkCmd = -15, StRlimit = -16,
    StCaps = -17, StNoNewPrivs = -18, StSeccomp = -19, StChdir = -20, StSetsid = -21, StPdeath = -22,
    StLandlock = -23, StCgroup = -24,
};
const char* stage_name(std::int32_t stage);

struct Rlimit {
    int resource;
    rlim_t soft, hard;
};

struct Plan {
    Mode mode = Mode::Isolated;
    bool allow_network = false;
    bool landlock_scope = false;     // Landlock-scope the command: no abstract unix sockets or signals outside
    int userns_fd = -1;              // Isolated: user namespace to join (ids already mapped)
    bool drop_groups = false;        // root: clear supplementary groups before joining
    std::uint32_t uid = 0, gid = 0;  // ids inside the user namespace
    std::string hostname;
    std::vector<FsStep> steps;
    std::vector<Rlimit> rlimits;
    std::string chdir_to;            // absolute path inside the sandbox
    std::vector<unsigned char> seccomp_bpf;   // struct sock_filter array
    std::vector<std::string> exec_candidates; // absolute paths to try for argv[0]
    std::vector<std::string> argv_storage, env_storage;
    std::vector<char*> argv, envp;   // NULL-terminated views of the storage
    std::vector<int> cgroup_fds;     // cgroup.procs of the sandbox's group(s): the monitor joins first
    bool workspace_tmpfs = false;    // the workspace MoveMount step attaches the quota tmpfs
    int status_fd = -1;              // write end
    int control_fd = -1;             // read end
    std::vector<char> scratch;       // buffer for readlink and similar
    // qnext's argv/environment block (from /proc/self/stat); monitor and init wipe their copy so
    // that /proc/1/cmdline in the sandbox shows nothing of qnext's command line or environment.
    std::uintptr_t args_begin = 0, args_end = 0, env_begin = 0, env_end = 0;
};

// The Landlock ABI version of this kernel (0 when Landlock is unavailable or disabled).
int landlock_abi();

// Build the plan (parent side). Throws SandboxError for invalid requests.
Plan make_plan(const Policy& policy, const SpawnRequest& req, const Limits& limits);

// Child entry (C1), called from the Boost.Process exec-setup hook. Returns only in the process
// that must exec (never: it execs itself); every other path ends in _exit.
[[noreturn]] void child_main(Plan& plan);

}  // namespace qnext::sandbox::detail
