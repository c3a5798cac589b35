// Safe access to files beneath a workspace directory. Every path a tool receives is relative to the workspace
// and is resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): "..", absolute paths and symlinks
// (absolute or relative) that would leave the workspace fail, checked by the kernel at each step, so a symlink
// swapped in between two calls cannot redirect an open outside. Kernels without openat2 (or with it blocked
// by seccomp) use an equivalent component-by-component walk with O_NOFOLLOW that refuses every symlink.
// Writes go to a temporary file that is renamed over the target: a hard link planted in the workspace that
// points to an outside inode is replaced, never written through.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace qnext::tools {

// A failed workspace operation; the message is meant for the model ("no such file: a.txt").
class PathError : public std::runtime_error {
public:
    explicit PathError(const std::string& msg, int err = 0) : std::runtime_error(msg), err_(err) {}
    int error_code() const { return err_; }  // errno of the failing call, 0 when not from a syscall

private:
    int err_;
};

// Owns one file descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd();
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_ = -1;
};

class Workspace {
public:
    // Opens the root (must be an existing directory). `strict_walk` forces the O_NOFOLLOW fallback (tests).
    explicit Workspace(const std::filesystem::path& root, bool strict_walk = false);

    const std::filesystem::path& root() const { return root_; }
    bool uses_openat2() const { return use_openat2_; }

    // Opens `rel` beneath the root with open(2) `flags` (O_NOFOLLOW is implied for the last component only in
    // the fallback walk). Throws PathError.
    UniqueFd open(std::string_view rel, int flags, mode_t mode = 0) const;
    // Opens a directory (O_RDONLY | O_DIRECTORY); "." or "" is the root itself.
    UniqueFd open_dir(std::string_view rel) const;
    // Creates the missing parent directories of `rel` (mode 0755). Throws PathError.
    void make_parents(std::string_view rel) const;
    // Reads a regular file; throws PathError if it is larger than `max_bytes` or not a regular file.
    std::string read_file(std::string_view rel, std::size_t max_bytes) const;
    // Creates or replaces a regular file atomically (temporary file + rename in the same directory), creating
    // missing parent directories. Keeps the permission bits of a replaced file. Returns bytes written.
    std::size_t write_file(std::string_view rel, std::string_view content) const;

    // Rejects paths that can never be valid: empty, absolute, containing NUL. Returns the path without
    // trailing slashes ("." for the root).
    static std::string check_relative(std::string_view rel);

private:
    UniqueFd open_beneath(int dirfd, std::string_view rel, int flags, mode_t mode) const;

    std::filesystem::path root_;
    UniqueFd root_fd_;
    bool use_openat2_ = true;
};

}  // namespace qnext::tools
