// Helpers shared by the sandbox tests: temporary workspaces, small-limit policies, host checks.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::testing {

// A fresh host directory (mode 0755) removed at scope exit.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "qnext-sbtest");
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// The default policy with the small limits the attack suite uses (64 MiB memory, 2 s CPU,
// 4 s wall clock, 32 processes, 8 MiB files, 16 MiB /tmp, a 32 MiB / 2048-inode workspace, 16 KiB captured output per stream).
Policy test_policy();

// Run `/bin/sh -c script` in `workspace` under `policy`.
RunResult sh(const Policy& policy, const std::filesystem::path& workspace, const std::string& script,
             const std::string& stdin_data = "");

// Host pids whose /proc/<pid>/cmdline contains `marker` (the calling process excluded).
std::vector<pid_t> host_pids_with(const std::string& marker);
// Zombie processes whose parent is this process.
int zombie_children();
// Number of open fds of this process.
int open_fd_count();
std::string read_file(const std::filesystem::path& p);
// Problems with what a sandbox left in `workspace`, seen from the host (symlinks not followed): an entry
// not owned by the workspace's owner, a regular file with S_ISUID/S_ISGID, a security.capability xattr.
std::vector<std::string> host_file_problems(const std::filesystem::path& workspace);

}  // namespace qnext::sandbox::testing
