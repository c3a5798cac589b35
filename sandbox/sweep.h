// Internal: the host-side sweep of a workspace after its sandbox has ended. The seccomp filter refuses
// every mode with S_ISUID/S_ISGID; the sweep is the second line: whatever the sandbox left in the host
// directory, no regular file keeps a set-user-ID or set-group-ID bit or a file capability, since the
// workspace's files belong to its host owner (root when qnext runs as root).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace qnext::sandbox::detail {

struct SweepReport {
    std::vector<std::string> fixed;   // workspace-relative paths whose bits/capabilities were removed
    std::string incomplete;           // why part of the tree was not visited ("" = all of it)
};

// Walks `workspace` without following symlinks (openat/fstatat relative to directory fds, never a
// path lookup from the root), visiting at most `max_entries` entries and `max_depth` directory levels.
// Mode bits are checked on every regular file (fstatat, which the walk needs anyway); the capability
// xattr only on files whose status changed at or after `since_ns` (CLOCK_REALTIME ns; 0 = every file):
// setting one changes ctime, so files older than the sandbox cannot have gained one.
SweepReport sweep_workspace(const std::filesystem::path& workspace, long long since_ns = 0,
                            std::size_t max_entries = 1u << 20,
                            std::size_t max_depth = 512);

}  // namespace qnext::sandbox::detail
