// Internal: the workspace as a size- and inode-limited tmpfs. A rlimit caps one file, not the sum: many files
// filled the host's disk and an inode flood ran until the timeout. So the sandbox gets a tmpfs of `disk_bytes`
// with `inodes` inodes (ENOSPC inside, never a host problem), filled with a copy of the host workspace before
// the command starts; when the sandbox has ended, what it changed is copied back.
//
// Copying back is a three-way merge against the snapshot taken at copy-in, so that two sandboxes sharing a
// workspace (parallel tool calls) do not undo each other: entries the sandbox created or changed are written
// to the host (regular files sparse-aware, symlinks as symlinks, directories), entries it deleted are deleted
// on the host only if the host entry is still the one copied in; fifos, sockets and devices are not copied.
// Every host access is relative to directory fds opened with O_NOFOLLOW (a symlink the sandbox made never
// redirects a write), modes lose S_ISUID/S_ISGID/S_ISVTX, and as root every entry is owned by the
// workspace directory's owner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sandbox/userns.h"

namespace qnext::sandbox::detail {

struct SyncReport {
    std::uint64_t files = 0, dirs = 0, links = 0, bytes = 0, deleted = 0;
    std::vector<std::string> skipped;   // "path (why)"
    double ms = 0;
};

class WorkspaceFs {
public:
    // As root the tmpfs is made here, owned by `sandbox_host_uid/gid` (the ids the sandbox runs as on the
    // host); otherwise by a short-lived helper inside the sandbox's user namespace `userns_fd`. Copies the
    // host directory in. Throws SandboxError (the message names the quota when the workspace does not fit).
    WorkspaceFs(const std::filesystem::path& host_dir, std::uint64_t disk_bytes, std::uint64_t inodes,
                int userns_fd, uid_t sandbox_host_uid, gid_t sandbox_host_gid);

    int mount_fd() const { return mnt_.get(); }   // detached mount for the MoveMount step
    const SyncReport& copied_in() const { return in_; }
    // Copies the sandbox's changes back to the host directory (call once, after every process is gone).
    SyncReport copy_back();

    struct Entry {
        char type = 0;   // 'd', 'f', 'l'
        std::uint64_t size = 0;
        std::int64_t mtime_ns = 0;
        unsigned mode = 0;
        std::string target;   // symlinks
        bool operator==(const Entry&) const = default;
    };

private:
    std::filesystem::path host_;
    Fd mnt_;
    bool root_ = false;
    uid_t owner_uid_ = 0;   // host workspace owner (copy-back ownership as root)
    gid_t owner_gid_ = 0;
    uid_t sb_uid_ = 0;      // tmpfs ownership as root
    gid_t sb_gid_ = 0;
    std::map<std::string, Entry> snapshot_;   // workspace-relative path -> the entry as copied in
    SyncReport in_;
};

}  // namespace qnext::sandbox::detail
