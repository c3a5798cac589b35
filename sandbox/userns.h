// Internal: user namespaces prepared by the parent (so that, as root, the sandbox can map to an
// unprivileged host uid) and the idmapped workspace mount used in that case.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace qnext::sandbox::detail {

// Owns a file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        reset(o.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const { return fd_; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    void reset(int fd = -1);

private:
    int fd_ = -1;
};

// A new user namespace with one uid and one gid mapping ("inside outside 1"); setgroups is denied.
// Returns an fd of /proc/<pid>/ns/user. Throws SandboxError.
Fd make_userns(uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid);

// A detached clone of the mount at `dir`, idmapped so that files owned by dir's owner appear owned
// by `host_uid`/`host_gid` (root only). Throws SandboxError with the reason if the kernel or the
// file system cannot do it.
Fd idmapped_workspace(const std::filesystem::path& dir, uid_t host_uid, gid_t host_gid);

// "" if user namespaces (and the mount API the sandbox needs) work here, else the reason.
std::string probe_isolation();

}  // namespace qnext::sandbox::detail
