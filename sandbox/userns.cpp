// User namespaces made by the parent, and the idmapped workspace mount (see userns.h).
#include "sandbox/userns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::detail {
namespace {

std::string errstr(int e) { return std::strerror(e); }

int idle(void*) {
    for (;;) pause();
}

void write_proc(const std::string& path, const std::string& text) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && path.ends_with("/setgroups")) return;   // kernels before 3.19
        throw SandboxError("sandbox: cannot open " + path + ": " + errstr(errno));
    }
    ssize_t n = write(fd, text.data(), text.size());
    int e = errno;
    close(fd);
    if (n != ssize_t(text.size()))
        throw SandboxError("sandbox: cannot write \"" + text.substr(0, text.size() - 1) + "\" to " + path + ": " +
                           errstr(e));
}

}  // namespace

void Fd::reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
}

Fd make_userns(uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid) {
    // A helper that only sleeps, created directly in a new user namespace. CLONE_VM avoids
    // copying the (possibly huge) page tables of qnext; the helper touches nothing but its stack.
    std::vector<char> stack(64 * 1024);
    pid_t pid = clone(idle, stack.data() + stack.size(), CLONE_NEWUSER | CLONE_VM | SIGCHLD, nullptr);
    if (pid < 0) {
        int e = errno;
        throw SandboxError("sandbox: cannot create a user namespace (" + errstr(e) +
                           "); user namespaces may be disabled here (sysctl user.max_user_namespaces, "
                           "kernel.unprivileged_userns_clone or an AppArmor userns restriction). "
                           "Use --sandbox none to run without isolation.");
    }
    struct Reaper {
        pid_t pid;
        ~Reaper() {
            kill(pid, SIGKILL);
            while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
            }
        }
    } reaper{pid};
    const std::string proc = "/proc/" + std::to_string(pid);
    write_proc(proc + "/setgroups", "deny");
    write_proc(proc + "/uid_map", std::to_string(inside_uid) + " " + std::to_string(outside_uid) + " 1\n");
    write_proc(proc + "/gid_map", std::to_string(inside_gid) + " " + std::to_string(outside_gid) + " 1\n");
    int fd = open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw SandboxError("sandbox: cannot open " + proc + "/ns/user: " + errstr(errno));
    return Fd(fd);
}

Fd idmapped_workspace(const std::filesystem::path& dir, uid_t host_uid, gid_t host_gid) {
    struct stat st;
    if (stat(dir.c_str(), &st) < 0)
        throw SandboxError("sandbox: workspace " + dir.string() + ": " + errstr(errno));
    Fd ns = make_userns(st.st_uid, host_uid, st.st_gid, host_gid);
    Fd tree(open_tree(AT_FDCWD, dir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    if (tree.get() < 0)
        throw SandboxError("sandbox: cannot clone the workspace mount " + dir.string() + ": " + errstr(errno) +
                           " (needs Linux >= 5.12)");
    struct mount_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attr.userns_fd = std::uint64_t(ns.get());
    if (mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        throw SandboxError("sandbox: cannot make an idmapped mount of the workspace " + dir.string() + ": " +
                           errstr(errno) +
                           " (running as root, the sandbox maps to an unprivileged uid and needs idmapped "
                           "mounts: Linux >= 5.12 and a file system that supports them, e.g. ext4, xfs, "
                           "btrfs, tmpfs >= 6.3)");
    return tree;
}

std::string probe_isolation() {
    try {
        bool root = geteuid() == 0;
        make_userns(1000, root ? 65534 : geteuid(), 1000, root ? 65534 : getegid());
    } catch (const SandboxError& e) {
        return e.what();
    }
    return "";
}

}  // namespace qnext::sandbox::detail
