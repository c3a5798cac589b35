// The workspace tmpfs and its copy-in / copy-back (see workspace_fs.h).
#include "sandbox/workspace_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

#include "sandbox/sandbox.h"

namespace qnext::sandbox::detail {
namespace {

constexpr int kMaxDepth = 256;

std::string errstr(int e) { return std::strerror(e); }

std::int64_t mtime_ns(const struct stat& st) { return std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec; }

Fd open_dir_at(int dirfd, const std::string& name) {
    return Fd(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

std::vector<std::string> list_dir(int dirfd) {
    std::vector<std::string> names;
    int fd = dup(dirfd);
    if (fd < 0) return names;
    DIR* d = fdopendir(fd);
    if (!d) {
        close(fd);
        return names;
    }
    rewinddir(d);
    while (struct dirent* e = readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        names.emplace_back(e->d_name);
    }
    closedir(d);
    return names;
}

std::string read_link_at(int dirfd, const std::string& name) {
    std::string buf(4096, '\0');
    ssize_t n = readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    return n < 0 ? std::string() : buf.substr(0, size_t(n));
}

WorkspaceFs::Entry entry_of(const struct stat& st, int dirfd, const std::string& name) {
    WorkspaceFs::Entry e;
    e.mode = st.st_mode & 0777;
    if (S_ISDIR(st.st_mode)) {
        e.type = 'd';
    } else if (S_ISREG(st.st_mode)) {
        e.type = 'f';
        e.size = std::uint64_t(st.st_size);
        e.mtime_ns = mtime_ns(st);
    } else if (S_ISLNK(st.st_mode)) {
        e.type = 'l';
        e.mode = 0;
        e.target = read_link_at(dirfd, name);
    }
    return e;
}

const char* kind_name(mode_t m) {
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISCHR(m) || S_ISBLK(m)) return "device";
    return "special file";
}

// Copies `size` bytes from src to dst, skipping holes (a sparse file stays sparse); returns 0 or errno.
int copy_data(int src, int dst, std::uint64_t size, std::uint64_t& copied) {
    static thread_local std::vector<char> buf(1 << 20);
    off_t pos = 0;
    const off_t end = off_t(size);
    while (pos < end) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;   // only a hole is left
            data = pos;                  // no SEEK_DATA support: copy everything
        }
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0 || hole > end) hole = end;
        for (off_t off = data; off < hole;) {
            ssize_t n = pread(src, buf.data(), size_t(std::min<off_t>(off_t(buf.size()), hole - off)), off);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return errno;
            if (n == 0) return 0;   // the file shrank: keep what is there
            for (ssize_t w = 0; w < n;) {
                ssize_t m = pwrite(dst, buf.data() + w, size_t(n - w), off + w);
                if (m < 0 && errno == EINTR) continue;
                if (m < 0) return errno;
                w += m;
            }
            off += n;
            copied += std::uint64_t(n);
        }
        pos = hole;
    }
    return ftruncate(dst, end) < 0 ? errno : 0;
}

int set_mtime(int fd, std::int64_t ns) {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {time_t(ns / 1000000000), long(ns % 1000000000)}};
    return futimens(fd, ts);
}

// Removes the host entry `name` in dirfd (a directory recursively), never following symlinks.
void remove_tree(int dirfd, const std::string& name, int depth = 0) {
    if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
    if (errno != EISDIR && errno != EPERM) return;
    if (depth < kMaxDepth) {
        Fd sub = open_dir_at(dirfd, name);
        if (sub.get() >= 0)
            for (const auto& n : list_dir(sub.get())) remove_tree(sub.get(), n, depth + 1);
    }
    unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
}

std::string temp_name() {
    static std::atomic<unsigned> n{0};
    return ".qnext-sync-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// The tmpfs, made in the sandbox's user namespace by a helper that shares qnext's memory and fd table
// (CLONE_VM | CLONE_FILES: the mount fd appears in qnext's table), for a qnext that is not root.
struct HelperArgs {
    int userns_fd;
    const char* size;
    const char* inodes;
    int mnt = -1;
    int err = 0;
    const char* stage = "";
};

int fail_at(HelperArgs* a, const char* stage) {
    a->err = errno;
    a->stage = stage;
    return 1;
}

int make_tmpfs_fd(HelperArgs* a, const char* uid, const char* gid) {
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return fail_at(a, "fsopen(tmpfs)");
    if (fsconfig(fs, FSCONFIG_SET_STRING, "source", "workspace", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "size", a->size, 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", a->inodes, 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
        (uid && fsconfig(fs, FSCONFIG_SET_STRING, "uid", uid, 0) < 0) ||
        (gid && fsconfig(fs, FSCONFIG_SET_STRING, "gid", gid, 0) < 0) ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
        fail_at(a, "configuring the tmpfs");
        close(fs);
        return 1;
    }
    a->mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (a->mnt < 0) fail_at(a, "fsmount");
    close(fs);
    return a->mnt < 0;
}

int helper_main(void* p) {
    auto* a = static_cast<HelperArgs*>(p);
    if (setns(a->userns_fd, CLONE_NEWUSER) < 0) return fail_at(a, "joining the sandbox user namespace");
    if (unshare(CLONE_NEWNS) < 0) return fail_at(a, "unshare(CLONE_NEWNS)");
    return make_tmpfs_fd(a, nullptr, nullptr);
}

Fd make_tmpfs(std::uint64_t bytes, std::uint64_t inodes, bool root, uid_t uid, gid_t gid, int userns_fd) {
    const std::string size_s = std::to_string(bytes), inodes_s = std::to_string(inodes);
    HelperArgs a{userns_fd, size_s.c_str(), inodes_s.c_str()};
    if (root) {
        const std::string u = std::to_string(uid), g = std::to_string(gid);
        make_tmpfs_fd(&a, u.c_str(), g.c_str());
    } else {
        std::vector<char> stack(64 * 1024);
        pid_t pid = clone(helper_main, stack.data() + stack.size(), CLONE_VM | CLONE_FILES | SIGCHLD, &a);
        if (pid < 0) {
            a.err = errno;
            a.stage = "clone";
        } else {
            while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
            }
        }
    }
    if (a.mnt < 0)
        throw SandboxError(std::string("sandbox: cannot make the workspace tmpfs (") + a.stage + ": " + errstr(a.err) +
                           "); set the policy's limits.disk_mb to 0 to bind the host directory without a quota");
    return Fd(a.mnt);
}

}  // namespace

namespace {

struct CopyIn {
    bool root;
    uid_t uid;
    gid_t gid;
    std::map<std::string, WorkspaceFs::Entry>& snap;
    SyncReport& rep;
    std::string quota;   // for the error message

    [[noreturn]] void fail(const std::string& path, int e) {
        if (e == ENOSPC || e == EDQUOT)
            throw SandboxError("sandbox: the workspace does not fit its quota (" + quota + "): no space left copying " +
                               path + " after " + std::to_string(rep.files) + " files, " +
                               std::to_string(rep.bytes >> 20) + " MiB; raise limits.disk_mb / limits.inodes, or "
                               "set limits.disk_mb to 0 to bind the host directory without a quota");
        throw SandboxError("sandbox: cannot copy the workspace entry " + path + " into the sandbox: " + errstr(e));
    }
    void own(int fd, const char* name, int flags) {
        if (root) fchownat(fd, name, uid, gid, flags);
    }

    void dir(int host, int tmp, const std::string& rel, int depth) {
        if (depth > kMaxDepth) throw SandboxError("sandbox: the workspace is nested deeper than 256 directories at " + rel);
        for (const std::string& name : list_dir(host)) {
            const std::string p = rel.empty() ? name : rel + "/" + name;
            struct stat st;
            if (fstatat(host, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;   // vanished
            WorkspaceFs::Entry e = entry_of(st, host, name);
            if (e.type == 'd') {
                Fd hsub = open_dir_at(host, name);
                if (hsub.get() < 0) {
                    rep.skipped.push_back(p + " (" + errstr(errno) + ")");
                    continue;
                }
                if (mkdirat(tmp, name.c_str(), 0700) < 0) fail(p, errno);
                Fd tsub = open_dir_at(tmp, name);
                if (tsub.get() < 0) fail(p, errno);
                dir(hsub.get(), tsub.get(), p, depth + 1);
                fchmod(tsub.get(), e.mode);
                own(tsub.get(), "", AT_EMPTY_PATH);
                ++rep.dirs;
            } else if (e.type == 'f') {
                Fd src(openat(host, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
                if (src.get() < 0) {
                    rep.skipped.push_back(p + " (" + errstr(errno) + ")");
                    continue;
                }
                Fd dst(openat(tmp, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
                if (dst.get() < 0) fail(p, errno);
                if (int err = copy_data(src.get(), dst.get(), e.size, rep.bytes)) fail(p, err);
                fchmod(dst.get(), e.mode);
                own(dst.get(), "", AT_EMPTY_PATH);
                set_mtime(dst.get(), e.mtime_ns);
                ++rep.files;
            } else if (e.type == 'l') {
                if (symlinkat(e.target.c_str(), tmp, name.c_str()) < 0) fail(p, errno);
                own(tmp, name.c_str(), AT_SYMLINK_NOFOLLOW);
                ++rep.links;
            } else {
                rep.skipped.push_back(p + " (" + kind_name(st.st_mode) + ")");
                continue;
            }
            snap[p] = e;
        }
    }
};

struct CopyBack {
    bool root;
    uid_t uid;
    gid_t gid;
    const std::map<std::string, WorkspaceFs::Entry>& snap;
    SyncReport& rep;
    std::set<std::string> seen;

    void own(int fd, const char* name, int flags) {
        if (root) fchownat(fd, name, uid, gid, flags);
    }
    void skip(const std::string& p, const std::string& why) { rep.skipped.push_back(p + " (" + why + ")"); }

    // Writes the file or symlink `name` of tmp to host under a temporary name, then renames it into place.
    void put(int tmp, int host, const std::string& name, const std::string& p, const WorkspaceFs::Entry& e) {
        const std::string t = temp_name();
        if (e.type == 'l') {
            if (symlinkat(e.target.c_str(), host, t.c_str()) < 0) return skip(p, errstr(errno));
            own(host, t.c_str(), AT_SYMLINK_NOFOLLOW);
            ++rep.links;
        } else {
            Fd src(openat(tmp, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (src.get() < 0 && errno == EACCES && fchmodat(tmp, name.c_str(), 0600, 0) == 0)
                src = Fd(openat(tmp, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (src.get() < 0) return skip(p, errstr(errno));
            Fd dst(openat(host, t.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (dst.get() < 0) return skip(p, errstr(errno));
            if (int err = copy_data(src.get(), dst.get(), e.size, rep.bytes)) {
                dst.reset();
                unlinkat(host, t.c_str(), 0);
                return skip(p, errstr(err));
            }
            fchmod(dst.get(), e.mode);
            own(dst.get(), "", AT_EMPTY_PATH);
            set_mtime(dst.get(), e.mtime_ns);
            ++rep.files;
        }
        if (renameat(host, t.c_str(), host, name.c_str()) < 0) {
            int err = errno;
            unlinkat(host, t.c_str(), 0);
            skip(p, errstr(err));
        }
    }

    void dir(int tmp, int host, const std::string& rel, int depth) {
        if (depth > kMaxDepth) return skip(rel, "nested deeper than 256 directories");
        for (const std::string& name : list_dir(tmp)) {
            const std::string p = rel.empty() ? name : rel + "/" + name;
            struct stat st, hs;
            if (fstatat(tmp, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
            seen.insert(p);
            WorkspaceFs::Entry e = entry_of(st, tmp, name);
            if (!e.type) {
                skip(p, kind_name(st.st_mode));
                continue;
            }
            auto it = snap.find(p);
            const bool host_exists = fstatat(host, name.c_str(), &hs, AT_SYMLINK_NOFOLLOW) == 0;
            if (e.type != 'd') {
                if (it != snap.end() && it->second == e) continue;   // unchanged since it was copied in
                if (host_exists && S_ISDIR(hs.st_mode)) remove_tree(host, name);
                put(tmp, host, name, p, e);
                continue;
            }
            if (host_exists && !S_ISDIR(hs.st_mode)) unlinkat(host, name.c_str(), 0);
            if (!host_exists || !S_ISDIR(hs.st_mode)) {
                if (mkdirat(host, name.c_str(), 0700) < 0) {
                    skip(p, errstr(errno));
                    continue;
                }
                own(host, name.c_str(), AT_SYMLINK_NOFOLLOW);
                ++rep.dirs;
            }
            Fd hsub = open_dir_at(host, name);
            if (hsub.get() < 0) {
                skip(p, errstr(errno));
                continue;
            }
            fchmodat(tmp, name.c_str(), 0700, 0);   // a mode the sandbox set must not lock qnext out
            Fd tsub = open_dir_at(tmp, name);
            if (tsub.get() < 0) {
                skip(p, errstr(errno));
                continue;
            }
            dir(tsub.get(), hsub.get(), p, depth + 1);
            if (it == snap.end() || it->second.mode != e.mode || !host_exists) fchmod(hsub.get(), e.mode);
        }
    }

    // Entries that were copied in and are gone now: deleted on the host if the host still holds what was
    // copied in (children before their directory: reverse order of the sorted paths).
    void deletions(int host_root) {
        for (auto it = snap.rbegin(); it != snap.rend(); ++it) {
            const std::string& p = it->first;
            if (seen.count(p)) continue;
            size_t slash = p.rfind('/');
            const std::string leaf = slash == std::string::npos ? p : p.substr(slash + 1);
            Fd parent;
            int dirfd = host_root;
            if (slash != std::string::npos) {
                parent = Fd(dup(host_root));
                size_t start = 0;
                while (parent.get() >= 0 && start < slash) {
                    size_t end = p.find('/', start);
                    parent = open_dir_at(parent.get(), p.substr(start, end - start));
                    start = end + 1;
                }
                if (parent.get() < 0) continue;   // the parent is gone or no longer a directory
                dirfd = parent.get();
            }
            struct stat hs;
            if (fstatat(dirfd, leaf.c_str(), &hs, AT_SYMLINK_NOFOLLOW) < 0) continue;
            WorkspaceFs::Entry now = entry_of(hs, dirfd, leaf);
            const WorkspaceFs::Entry& was = it->second;
            if (now.type != was.type) continue;
            if (was.type == 'd') {
                if (unlinkat(dirfd, leaf.c_str(), AT_REMOVEDIR) == 0) ++rep.deleted;   // ENOTEMPTY: keep it
            } else if (now.size == was.size && now.mtime_ns == was.mtime_ns && now.target == was.target) {
                if (unlinkat(dirfd, leaf.c_str(), 0) == 0) ++rep.deleted;
            }
        }
    }
};

}  // namespace

WorkspaceFs::WorkspaceFs(const std::filesystem::path& host_dir, std::uint64_t disk_bytes, std::uint64_t inodes,
                         int userns_fd, uid_t sandbox_host_uid, gid_t sandbox_host_gid)
    : host_(host_dir), root_(geteuid() == 0), sb_uid_(sandbox_host_uid), sb_gid_(sandbox_host_gid) {
    const auto t0 = std::chrono::steady_clock::now();
    struct stat st;
    if (stat(host_dir.c_str(), &st) < 0)
        throw SandboxError("sandbox: workspace " + host_dir.string() + ": " + errstr(errno));
    owner_uid_ = st.st_uid;
    owner_gid_ = st.st_gid;
    mnt_ = make_tmpfs(disk_bytes, inodes, root_, sb_uid_, sb_gid_, userns_fd);
    Fd host(open(host_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (host.get() < 0) throw SandboxError("sandbox: cannot open the workspace " + host_dir.string() + ": " + errstr(errno));
    CopyIn c{root_, sb_uid_, sb_gid_, snapshot_, in_,
             std::to_string(disk_bytes >> 20) + " MiB, " + std::to_string(inodes) + " inodes"};
    Fd tmp(openat(mnt_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (tmp.get() < 0) throw SandboxError("sandbox: cannot open the workspace tmpfs: " + errstr(errno));
    c.dir(host.get(), tmp.get(), "", 0);
    in_.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

SyncReport WorkspaceFs::copy_back() {
    const auto t0 = std::chrono::steady_clock::now();
    SyncReport rep;
    Fd host(open(host_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (host.get() < 0) {
        rep.skipped.push_back(". (cannot open the host workspace: " + errstr(errno) + ")");
        return rep;
    }
    // fsmount gives an O_PATH fd: directories are listed through a real one.
    Fd tmp(openat(mnt_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (tmp.get() < 0) {
        rep.skipped.push_back(". (cannot open the workspace tmpfs: " + errstr(errno) + ")");
        return rep;
    }
    CopyBack c{root_, owner_uid_, owner_gid_, snapshot_, rep, {}};
    c.dir(tmp.get(), host.get(), "", 0);
    c.deletions(host.get());
    rep.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace qnext::sandbox::detail
