// `qnext sandbox` CLI: the --json output contract, exit codes, --sandbox none, errors, bench.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/sandbox/sandbox_test_util.h"

namespace qnext::sandbox::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct Cli {
    int status = -1;
    std::string out, err;
};

// Runs QNEXT_BIN with `args` (shell-quoted by the caller), capturing stdout and stderr.
Cli qnext(const std::string& args, const std::string& stdin_text = "") {
    TempDir io("qnext-cli");
    const fs::path in = io.path() / "in", out = io.path() / "out", err = io.path() / "err";
    std::ofstream(in) << stdin_text;
    const std::string cmd = std::string(QNEXT_BIN) + " " + args + " <" + in.string() + " >" + out.string() + " 2>" +
                            err.string();
    Cli c;
    int rc = std::system(cmd.c_str());
    c.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    c.out = read_file(out);
    c.err = read_file(err);
    return c;
}

class SandboxCli : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string reason = isolation_unavailable_reason();
        if (!reason.empty()) GTEST_SKIP() << "isolation unavailable here: " << reason;
    }
    TempDir ws;
};

TEST_F(SandboxCli, JsonIsExactlyOneObject) {
    Cli c = qnext("sandbox --json --timeout 5 --workspace " + ws.path().string() +
                  " -- /bin/sh -c 'cat; echo e >&2; echo f > /workspace/f; exit 4'", "in");
    ASSERT_EQ(c.status, 0) << c.err;
    json j = json::parse(c.out);   // throws on trailing garbage
    EXPECT_EQ(j.size(), 11u);
    EXPECT_TRUE(j["enforcement"]["tree"].contains("backend"));
    EXPECT_EQ(j["exit_code"], 4);
    EXPECT_TRUE(j["signal"].is_null());
    EXPECT_EQ(j["timed_out"], false);
    EXPECT_TRUE(j["limit"].is_null());
    EXPECT_EQ(j["truncated"], false);
    EXPECT_EQ(j["stdout"], "in");
    EXPECT_EQ(j["stderr"], "e\n");
    EXPECT_TRUE(j["wall_ms"].is_number() && j["cpu_ms"].is_number());
    EXPECT_EQ(read_file(ws.path() / "f"), "f\n");
}

TEST_F(SandboxCli, LimitsFromFlags) {
    Cli c = qnext("sandbox --json --memory 64 -- python3 -c 'bytearray(1 << 30)'");
    json j = json::parse(c.out);
    EXPECT_EQ(j["limit"], "memory");
    c = qnext("sandbox --json --timeout 0.5 -- sleep 10");
    j = json::parse(c.out);
    EXPECT_EQ(j["timed_out"], true);
    EXPECT_EQ(j["signal"], 9);
    EXPECT_TRUE(j["exit_code"].is_null());
}

TEST_F(SandboxCli, PlainOutputAndExitCode) {
    Cli c = qnext("sandbox -- /bin/sh -c 'echo hi; exit 7'");
    EXPECT_EQ(c.status, 7);
    EXPECT_EQ(c.out, "hi\n");
    EXPECT_NE(c.err.find("exit 7"), std::string::npos);
}

TEST_F(SandboxCli, SandboxNoneWarns) {
    Cli c = qnext("sandbox --json --sandbox none -- /bin/true");
    EXPECT_EQ(json::parse(c.out)["exit_code"], 0);
    EXPECT_NE(c.err.find("WITHOUT sandbox isolation"), std::string::npos);
}

TEST_F(SandboxCli, Errors) {
    Cli c = qnext("sandbox --json --policy " + (ws.path() / "nope.json").string() + " -- true");
    EXPECT_NE(c.status, 0);
    std::ofstream(ws.path() / "bad.json") << R"({"limits": {"memroy_mb": 1}})";
    c = qnext("sandbox --policy " + (ws.path() / "bad.json").string() + " -- true");
    EXPECT_EQ(c.status, 1);
    EXPECT_NE(c.err.find("qnext: error: sandbox policy: limits: unknown key \"memroy_mb\""), std::string::npos) << c.err;
    c = qnext("sandbox --json -- qnext-no-such-binary");
    EXPECT_EQ(json::parse(c.out)["exit_code"], 127);
}

TEST_F(SandboxCli, Bench) {
    Cli c = qnext("bench sandbox --runs 2 --json");
    ASSERT_EQ(c.status, 0) << c.err;
    json j = json::parse(c.out);
    EXPECT_GT(j["sandboxed_median_wall_ms"].get<double>(), 0);
    EXPECT_GT(j["unsandboxed_median_wall_ms"].get<double>(), 0);
}

}  // namespace
}  // namespace qnext::sandbox::testing
