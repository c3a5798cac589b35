#include "tests/sandbox/sandbox_test_util.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qnext::sandbox::testing {
namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

Policy test_policy() {
    Policy p = default_policy();
    p.limits.timeout_s = 4;
    p.limits.cpu_s = 2;
    p.limits.memory_bytes = 64ull << 20;
    p.limits.max_processes = 32;
    p.limits.max_file_bytes = 8ull << 20;
    p.limits.tmp_bytes = 16ull << 20;
    p.limits.disk_bytes = 32ull << 20;
    p.limits.max_inodes = 2048;
    p.limits.output_bytes = 16ull << 10;
    p.limits.output_hard_bytes = 4ull << 20;
    return p;
}

RunResult sh(const Policy& policy, const fs::path& workspace, const std::string& script,
             const std::string& stdin_data) {
    RunRequest r;
    r.argv = {"/bin/sh", "-c", script};
    r.workspace = workspace;
    r.stdin_data = stdin_data;
    return run(policy, r);
}

std::vector<std::string> host_file_problems(const fs::path& workspace) {
    std::vector<std::string> out;
    struct stat root {};
    if (lstat(workspace.c_str(), &root) != 0) return out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(workspace, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::path& p = it->path();
        struct stat st {};
        if (lstat(p.c_str(), &st) != 0) continue;
        if (st.st_uid != root.st_uid || st.st_gid != root.st_gid)
            out.push_back(p.string() + " is owned by " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) +
                          ", not by the workspace owner " + std::to_string(root.st_uid) + ":" +
                          std::to_string(root.st_gid));
        if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)))
            out.push_back(p.string() + " has mode " + std::to_string(st.st_mode & 07777) + " (octal " +
                          [&] { char b[16]; std::snprintf(b, sizeof b, "%o", unsigned(st.st_mode & 07777)); return std::string(b); }() +
                          ") on the host");
        if (!S_ISLNK(st.st_mode) && lgetxattr(p.c_str(), "security.capability", nullptr, 0) >= 0)
            out.push_back(p.string() + " carries file capabilities on the host");
    }
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<pid_t> host_pids_with(const std::string& marker) {
    std::vector<pid_t> out;
    const pid_t self = getpid();
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        pid_t pid = std::stoi(name);
        if (pid == self) continue;
        std::string cmd = read_file(e.path() / "cmdline");
        for (char& c : cmd)
            if (c == '\0') c = ' ';
        if (cmd.find(marker) != std::string::npos) out.push_back(pid);
    }
    return out;
}

int zombie_children() {
    int n = 0;
    const std::string self = std::to_string(getpid());
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string stat = read_file(e.path() / "stat");
        size_t rp = stat.rfind(')');
        if (rp == std::string::npos) continue;
        std::istringstream rest(stat.substr(rp + 2));
        std::string state, ppid;
        rest >> state >> ppid;
        if (state == "Z" && ppid == self) ++n;
    }
    return n;
}

int open_fd_count() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n - 1;   // the directory iterator's own fd
}

}  // namespace qnext::sandbox::testing
