#include "tests/sandbox/sandbox_test_util.h"

#include <sys/stat.h>
#include <unistd.h>

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
