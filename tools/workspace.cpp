// Workspace path resolution: openat2(RESOLVE_BENEATH) with an O_NOFOLLOW walk as fallback.
#include "tools/workspace.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

namespace qnext::tools {
namespace {

std::string quote(std::string_view rel) { return std::string(rel); }

std::string errno_message(std::string_view rel, int err) {
    switch (err) {
        case EXDEV: return "path " + quote(rel) + " is outside the workspace";
        case ELOOP: return "path " + quote(rel) + " goes through a symbolic link that is not allowed";
        case ENOENT: return "no such file or directory: " + quote(rel);
        case ENOTDIR: return "not a directory: " + quote(rel);
        case EISDIR: return quote(rel) + " is a directory";
        case EACCES:
        case EPERM: return "permission denied: " + quote(rel);
        default: return quote(rel) + ": " + std::strerror(err);
    }
}

[[noreturn]] void throw_errno(std::string_view rel, int err) { throw PathError(errno_message(rel, err), err); }

// Splits "a/b//c/" into {"a", "b", "c"}; "." components are dropped.
std::vector<std::string> components(std::string_view rel) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < rel.size()) {
        std::size_t j = rel.find('/', i);
        if (j == std::string_view::npos) j = rel.size();
        std::string_view c = rel.substr(i, j - i);
        if (!c.empty() && c != ".") out.emplace_back(c);
        i = j + 1;
    }
    return out;
}

long sys_openat2(int dirfd, const char* path, int flags, mode_t mode, std::uint64_t resolve) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}

UniqueFd::~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
}

Workspace::Workspace(const std::filesystem::path& root, bool strict_walk) {
    std::error_code ec;
    root_ = std::filesystem::canonical(root, ec);
    if (ec || !std::filesystem::is_directory(root_))
        throw std::runtime_error("workspace " + root.string() + " is not an existing directory");
    root_fd_ = UniqueFd(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd_) throw std::runtime_error("cannot open workspace " + root_.string() + ": " + std::strerror(errno));
    use_openat2_ = !strict_walk;
    if (use_openat2_) {
        long fd = sys_openat2(root_fd_.get(), ".", O_PATH | O_CLOEXEC, 0, RESOLVE_BENEATH);
        if (fd >= 0) {
            ::close(static_cast<int>(fd));
        } else {
            use_openat2_ = false;  // ENOSYS (old kernel) or EPERM (seccomp): use the strict walk
        }
    }
}

std::string Workspace::check_relative(std::string_view rel) {
    if (rel.empty()) throw PathError("empty path");
    if (rel.find('\0') != std::string_view::npos) throw PathError("path contains a NUL byte");
    if (rel.front() == '/') throw PathError("path " + quote(rel) + " is absolute; use a path relative to the workspace");
    while (rel.size() > 1 && rel.back() == '/') rel.remove_suffix(1);
    return std::string(rel);
}

UniqueFd Workspace::open_beneath(int dirfd, std::string_view rel_in, int flags, mode_t mode) const {
    const std::string rel = check_relative(rel_in);
    flags |= O_CLOEXEC;
    if (use_openat2_) {
        for (int attempt = 0;; ++attempt) {
            long fd = sys_openat2(dirfd, rel.c_str(), flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
            if (fd >= 0) return UniqueFd(static_cast<int>(fd));
            if (errno == EAGAIN && attempt < 8) continue;  // a concurrent rename raced the lookup
            throw_errno(rel, errno);
        }
    }
    // Fallback: walk one component at a time, never following a symlink, tracking depth for "..".
    std::vector<UniqueFd> stack;
    stack.emplace_back(::openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!stack.back()) throw_errno(rel, errno);
    const std::vector<std::string> parts = components(rel);
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const bool last = i + 1 == parts.size();
        if (parts[i] == "..") {
            if (stack.size() == 1) throw_errno(rel, EXDEV);
            stack.pop_back();
            if (!last) continue;
            break;
        }
        const int cur = stack.back().get();
        if (last) {
            int fd = ::openat(cur, parts[i].c_str(), flags | O_NOFOLLOW, mode);
            if (fd < 0) throw_errno(rel, errno);
            UniqueFd out(fd);
            struct stat st {};
            if ((flags & O_PATH) && ::fstat(fd, &st) == 0 && S_ISLNK(st.st_mode))
                throw_errno(rel, ELOOP);
            return out;
        }
        UniqueFd next(::openat(cur, parts[i].c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!next) throw_errno(rel, errno);
        struct stat st {};
        if (::fstat(next.get(), &st) != 0) throw_errno(rel, errno);
        if (S_ISLNK(st.st_mode)) throw_errno(rel, ELOOP);
        if (!S_ISDIR(st.st_mode)) throw_errno(rel, ENOTDIR);
        stack.push_back(std::move(next));
    }
    // The path named a directory on the stack ("." or "a/.."): reopen it with the requested flags.
    int fd = ::openat(stack.back().get(), ".", flags & ~(O_CREAT | O_EXCL | O_TRUNC), mode);
    if (fd < 0) throw_errno(rel, errno);
    return UniqueFd(fd);
}

UniqueFd Workspace::open(std::string_view rel, int flags, mode_t mode) const {
    return open_beneath(root_fd_.get(), rel, flags, mode);
}

UniqueFd Workspace::open_dir(std::string_view rel) const {
    return open(rel.empty() ? std::string_view(".") : rel, O_RDONLY | O_DIRECTORY);
}

void Workspace::make_parents(std::string_view rel_in) const {
    const std::string rel = check_relative(rel_in);
    const std::vector<std::string> parts = components(rel);
    std::string prefix;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        const std::string parent = prefix.empty() ? "." : prefix;
        prefix += (prefix.empty() ? "" : "/") + parts[i];
        if (parts[i] == "..") continue;  // resolution checks that it stays beneath the root
        UniqueFd pfd = open(parent, O_PATH | O_DIRECTORY);
        if (::mkdirat(pfd.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST)
            throw_errno(prefix, errno);
        open(prefix, O_PATH | O_DIRECTORY);  // the existing entry must be a directory beneath the root
    }
}

std::string Workspace::read_file(std::string_view rel, std::size_t max_bytes) const {
    UniqueFd fd = open(rel, O_RDONLY | O_NONBLOCK);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno(rel, errno);
    if (S_ISDIR(st.st_mode)) throw_errno(rel, EISDIR);
    if (!S_ISREG(st.st_mode)) throw PathError(quote(rel) + " is not a regular file");
    if (static_cast<std::size_t>(st.st_size) > max_bytes)
        throw PathError(quote(rel) + " is " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                        std::to_string(max_bytes) + " bytes");
    std::string out;
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(rel, errno);
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
}

std::size_t Workspace::write_file(std::string_view rel_in, std::string_view content) const {
    const std::string rel = check_relative(rel_in);
    const std::vector<std::string> parts = components(rel);
    const bool names_dir = rel == "." || rel.ends_with("/.") || rel == ".." || rel.ends_with("/..");
    if (parts.empty() || names_dir) throw_errno(rel, EISDIR);
    make_parents(rel);
    std::string parent = ".";
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) parent += "/" + parts[i];
    const std::string& name = parts.back();
    UniqueFd dir = open(parent, O_PATH | O_DIRECTORY);

    mode_t mode = 0644;
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode)) throw_errno(rel, EISDIR);
        if (S_ISREG(st.st_mode)) mode = st.st_mode & 07777 & ~static_cast<mode_t>(S_ISUID | S_ISGID);
    }
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string tmp;
    UniqueFd out;
    for (int attempt = 0; attempt < 16 && !out; ++attempt) {
        tmp.assign(1, '.');  // built step by step: GCC 12 reports a false -Wrestrict for "." + string
        tmp.append(name, 0, 200);
        tmp.append(".qnext-").append(std::to_string(rng() % 1000000000));
        out = UniqueFd(::openat(dir.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out && errno != EEXIST) throw_errno(rel, errno);
    }
    if (!out) throw PathError("cannot create a temporary file next to " + quote(rel));
    auto fail = [&](int err) {
        ::unlinkat(dir.get(), tmp.c_str(), 0);
        throw_errno(rel, err);
    };
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(out.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(errno);
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(out.get(), mode) != 0) fail(errno);
    out = UniqueFd();
    if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) fail(errno);
    return done;
}

}  // namespace qnext::tools
