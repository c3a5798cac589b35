// Task files and file checks act on the host, as qnext's user, on a workspace the sandboxed model has written
// to: every path must stay inside it. A symlink planted by a sandboxed step is replaced, never written
// through or read through; absolute and ".." paths are refused when the task is loaded.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/runtime.h"
#include "agent/task.h"
#include "sandbox/sandbox.h"

namespace qnext::agent {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Dirs {
    fs::path ws = make_temp_dir("qnext-taskws");
    fs::path host = make_temp_dir("qnext-taskhost");
    fs::path canary = host / "canary.txt";
    Dirs() { std::ofstream(canary) << "original"; }
    ~Dirs() {
        std::error_code ec;
        fs::remove_all(ws, ec);
        fs::remove_all(host, ec);
    }
};

Task task_with(const ojson& files, const ojson& checks = ojson::object()) {
    ojson j{{"name", "t"}, {"messages", ojson::array({"hi"})}, {"files", files}};
    if (!checks.empty()) j["checks"] = checks;
    return parse_task(j, "/tmp/task.json");
}

std::string load_error(const ojson& files, const ojson& checks = ojson::object()) {
    try {
        task_with(files, checks);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

TEST(TaskFiles, PathsOutsideTheWorkspaceAreRefusedAtLoad) {
    for (const char* bad : {"/etc/passwd", "../escape.txt", "a/../../escape.txt", "a/..", ""}) {
        std::string e = load_error(ojson{{bad, "x"}});
        EXPECT_NE(e.find("'files." + std::string(bad) + "'"), std::string::npos) << bad << ": " << e;
        EXPECT_NE(e.find("not a path inside the workspace"), std::string::npos) << bad << ": " << e;
        e = load_error(ojson::object(), ojson{{"files", {{bad, {{"exists", true}}}}}});
        EXPECT_NE(e.find("'checks.files." + std::string(bad) + "'"), std::string::npos) << bad << ": " << e;
    }
    EXPECT_NE(load_error(ojson::object(), ojson{{"files", {{"a.txt", {{"exists", "yes"}}}}}}).find("true or false"),
              std::string::npos);
    EXPECT_EQ(load_error(ojson{{"sub/dir/ok.txt", "x"}}), "");
}

TEST(TaskFiles, WriteReplacesAPlantedSymlinkInsteadOfWritingThroughIt) {
    Dirs d;
    fs::create_symlink(d.canary, d.ws / "notes.txt");
    write_task_files(task_with(ojson{{"notes.txt", "task content"}}), d.ws);
    EXPECT_EQ(slurp(d.canary), "original");
    EXPECT_FALSE(fs::is_symlink(d.ws / "notes.txt"));
    EXPECT_EQ(slurp(d.ws / "notes.txt"), "task content");
}

TEST(TaskFiles, WriteThroughASymlinkedDirectoryIsRefused) {
    Dirs d;
    fs::create_directory_symlink(d.host, d.ws / "sub");
    try {
        write_task_files(task_with(ojson{{"sub/canary.txt", "overwritten"}}), d.ws);
        ADD_FAILURE() << "no error";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("files.sub/canary.txt"), std::string::npos) << e.what();
    }
    EXPECT_EQ(slurp(d.canary), "original");
}

// The case end to end: a sandboxed shell step plants the link, the next task run writes its files.
TEST(TaskFiles, SymlinkPlantedBySandboxedCodeIsNotFollowed) {
    if (!sandbox::isolation_unavailable_reason().empty()) GTEST_SKIP() << "no isolation here";
    Dirs d;
    sandbox::RunRequest req;
    req.argv = {"/bin/sh", "-c", "ln -s " + d.canary.string() + " notes.txt && ln -s /etc/hostname result.txt"};
    req.workspace = d.ws;
    sandbox::RunResult r = sandbox::run(sandbox::default_policy(), req);
    ASSERT_EQ(r.exit_code, 0) << r.stderr_data;
    ASSERT_TRUE(fs::is_symlink(d.ws / "notes.txt"));
    write_task_files(task_with(ojson{{"notes.txt", "task content"}}), d.ws);
    EXPECT_EQ(slurp(d.canary), "original");
    EXPECT_EQ(slurp(d.ws / "notes.txt"), "task content");
}

TEST(TaskChecks, ChecksDoNotFollowSymlinksOutOfTheWorkspace) {
    Dirs d;
    fs::create_symlink(d.canary, d.ws / "result.txt");
    fs::create_symlink("/etc/hostname", d.ws / "abs.txt");
    std::ofstream(d.ws / "real.txt") << "original";
    fs::create_symlink("real.txt", d.ws / "inside.txt");   // a link that stays inside is fine
    Task t = task_with(ojson::object(), ojson{{"files",
                                               {{"result.txt", {{"exists", true}, {"contains", "original"}}},
                                                {"abs.txt", {{"exists", true}}},
                                                {"real.txt", {{"equals", "original"}}},
                                                {"inside.txt", {{"contains", "orig"}}}}}});
    std::vector<CheckResult> res = evaluate_checks(t.checks, TurnOutcome{}, {}, d.ws);
    std::map<std::string, bool> ok;
    for (const auto& c : res) ok[c.check] = c.passed;
    EXPECT_FALSE(ok.at("files.result.txt.exists"));
    EXPECT_FALSE(ok.at("files.result.txt.contains"));
    EXPECT_FALSE(ok.at("files.abs.txt.exists"));
    EXPECT_TRUE(ok.at("files.real.txt.equals"));
    EXPECT_TRUE(ok.at("files.inside.txt.contains"));
}

// tool_call_count: exact or a range, over every call of the task (hello-agent calls python twice for one
// question today; such a check can require one call).
TEST(TaskChecks, ToolCallCount) {
    Dirs d;
    Task t = task_with(ojson::object(), ojson{{"tool_call_count", {{"python", 1}, {"shell", {{"min", 1}, {"max", 2}}},
                                                                    {"read_file", 0}}}});
    auto eval = [&](std::vector<std::string> called) {
        std::map<std::string, bool> ok;
        for (const auto& c : evaluate_checks(t.checks, TurnOutcome{}, called, d.ws)) ok[c.check] = c.passed;
        return ok;
    };
    auto once = eval({"python", "shell"});
    EXPECT_TRUE(once.at("tool_call_count.python"));
    EXPECT_TRUE(once.at("tool_call_count.shell"));
    EXPECT_TRUE(once.at("tool_call_count.read_file"));
    auto twice = eval({"python", "python", "shell", "shell", "shell", "read_file"});
    EXPECT_FALSE(twice.at("tool_call_count.python"));
    EXPECT_FALSE(twice.at("tool_call_count.shell"));
    EXPECT_FALSE(twice.at("tool_call_count.read_file"));
    EXPECT_THROW(task_with(ojson::object(), ojson{{"tool_call_count", {{"python", {{"min", 3}, {"max", 1}}}}}}),
                 std::runtime_error);
    EXPECT_THROW(task_with(ojson::object(), ojson{{"tool_call_count", {{"python", "one"}}}}), std::runtime_error);
}

}  // namespace
}  // namespace qnext::agent
