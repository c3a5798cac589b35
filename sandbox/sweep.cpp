// The workspace sweep (see sweep.h).
#include "sandbox/sweep.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qnext::sandbox::detail {
namespace {

constexpr const char* kCapXattr = "security.capability";

struct Dir {
    DIR* dir;
    std::string rel;   // "" for the root
};

}  // namespace

SweepReport sweep_workspace(const std::filesystem::path& workspace, long long since_ns, std::size_t max_entries,
                            std::size_t max_depth) {
    SweepReport report;
    int root = ::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0) {
        report.incomplete = "cannot open the workspace " + workspace.string() + ": " + std::strerror(errno);
        return report;
    }
    DIR* d = fdopendir(root);
    if (!d) {
        ::close(root);
        report.incomplete = "cannot read the workspace " + workspace.string() + ": " + std::strerror(errno);
        return report;
    }
    std::vector<Dir> stack{{d, ""}};
    std::size_t seen = 0;
    while (!stack.empty()) {
        Dir& top = stack.back();
        errno = 0;
        struct dirent* e = readdir(top.dir);
        if (!e) {
            closedir(top.dir);
            stack.pop_back();
            continue;
        }
        const char* name = e->d_name;
        if (!std::strcmp(name, ".") || !std::strcmp(name, "..")) continue;
        if (++seen > max_entries) {
            report.incomplete = "the workspace has more than " + std::to_string(max_entries) + " entries";
            break;
        }
        const int dfd = dirfd(top.dir);
        const std::string rel = top.rel.empty() ? std::string(name) : top.rel + "/" + name;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;   // gone meanwhile
        if (S_ISDIR(st.st_mode)) {
            if (stack.size() > max_depth) {
                report.incomplete = "the workspace nests deeper than " + std::to_string(max_depth) + " directories";
                continue;
            }
            int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) continue;
            DIR* sd = fdopendir(sub);
            if (!sd) {
                ::close(sub);
                continue;
            }
            stack.push_back({sd, rel});
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue;
        const long long ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
        const bool suid = st.st_mode & (S_ISUID | S_ISGID);
        if (!suid && ctime_ns < since_ns) continue;
        // O_PATH would not do for fchmod/fremovexattr on every kernel: open for reading without following a
        // symlink and without blocking (a FIFO is not S_ISREG, so this cannot hang).
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            if (suid) {
                // Unreadable (mode 0): fix it through the directory entry.
                if (fchmodat(dfd, name, st.st_mode & 07777 & ~mode_t(S_ISUID | S_ISGID), 0) == 0)
                    report.fixed.push_back(rel);
            }
            continue;
        }
        bool fixed = false;
        struct stat fst;
        if (fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode)) {
            if (fst.st_mode & (S_ISUID | S_ISGID))
                fixed |= fchmod(fd, fst.st_mode & 07777 & ~mode_t(S_ISUID | S_ISGID)) == 0;
            if (fgetxattr(fd, kCapXattr, nullptr, 0) >= 0) fixed |= fremovexattr(fd, kCapXattr) == 0;
        }
        ::close(fd);
        if (fixed) report.fixed.push_back(rel);
    }
    for (Dir& rest : stack) closedir(rest.dir);
    return report;
}

}  // namespace qnext::sandbox::detail
