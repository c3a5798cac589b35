// Workspace confinement: every escape (.., absolute, symlinks out, magic links, hard links) must fail, in both
// the openat2 mode and the strict O_NOFOLLOW walk.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/tools/temp_dir.h"
#include "tools/workspace.h"

namespace qnext::tools {
namespace {

using testing::read_text;
using testing::TempDir;
using testing::write_text;

class WorkspaceTest : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        root = tmp / "ws";
        std::filesystem::create_directories(root / "sub");
        write_text(root / "a.txt", "alpha\n");
        write_text(root / "sub" / "b.txt", "beta\n");
        write_text(tmp / "outside.txt", "secret\n");
        ws = std::make_unique<Workspace>(root, GetParam());
    }
    // Expects a PathError whose message contains `what`.
    void expect_fail(const std::function<void()>& f, const std::string& what) {
        try {
            f();
            ADD_FAILURE() << "expected a PathError containing \"" << what << "\"";
        } catch (const PathError& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    }
    TempDir tmp;
    std::filesystem::path root;
    std::unique_ptr<Workspace> ws;
};

TEST_P(WorkspaceTest, ReadsInsideFiles) {
    EXPECT_EQ(ws->read_file("a.txt", 1 << 20), "alpha\n");
    EXPECT_EQ(ws->read_file("sub/b.txt", 1 << 20), "beta\n");
    EXPECT_EQ(ws->read_file("./sub//b.txt", 1 << 20), "beta\n");
    EXPECT_EQ(ws->read_file("sub/../a.txt", 1 << 20), "alpha\n");
}

TEST_P(WorkspaceTest, RejectsDotDotEscape) {
    expect_fail([&] { ws->read_file("../outside.txt", 1 << 20); }, "outside the workspace");
    expect_fail([&] { ws->read_file("sub/../../outside.txt", 1 << 20); }, "outside the workspace");
    expect_fail([&] { ws->write_file("../evil.txt", "x"); }, "outside the workspace");
    EXPECT_FALSE(std::filesystem::exists(tmp / "evil.txt"));
}

TEST_P(WorkspaceTest, RejectsAbsolutePaths) {
    expect_fail([&] { ws->read_file((tmp / "outside.txt").string(), 1 << 20); }, "absolute");
    expect_fail([&] { ws->read_file("/etc/passwd", 1 << 20); }, "absolute");
    expect_fail([&] { ws->write_file((tmp / "evil.txt").string(), "x"); }, "absolute");
    EXPECT_FALSE(std::filesystem::exists(tmp / "evil.txt"));
}

TEST_P(WorkspaceTest, RejectsEmptyAndNul) {
    expect_fail([&] { ws->read_file("", 1 << 20); }, "empty path");
    expect_fail([&] { ws->read_file(std::string("a.txt\0x", 7), 1 << 20); }, "NUL");
}

TEST_P(WorkspaceTest, RejectsSymlinksPointingOut) {
    std::filesystem::create_symlink(tmp / "outside.txt", root / "abs_link");
    std::filesystem::create_symlink("../outside.txt", root / "rel_link");
    std::filesystem::create_directory_symlink(tmp.path(), root / "dir_link");
    std::filesystem::create_symlink("/proc/self/root/etc/passwd", root / "proc_link");
    for (const char* p : {"abs_link", "rel_link", "dir_link/outside.txt", "proc_link"})
        expect_fail([&] { ws->read_file(p, 1 << 20); }, GetParam() ? "symbolic link" : "outside the workspace");
    // Writing through a planted symlink replaces the link inside the workspace, never the target outside.
    expect_fail([&] { ws->write_file("dir_link/evil.txt", "x"); }, "");
    EXPECT_FALSE(std::filesystem::exists(tmp / "evil.txt"));
    ws->write_file("abs_link", "replaced");
    EXPECT_EQ(read_text(tmp / "outside.txt"), "secret\n");
    EXPECT_FALSE(std::filesystem::is_symlink(root / "abs_link"));
    EXPECT_EQ(read_text(root / "abs_link"), "replaced");
}

TEST_P(WorkspaceTest, FollowsSymlinksThatStayInside) {
    std::filesystem::create_symlink("sub/b.txt", root / "inner_link");
    if (GetParam()) {
        expect_fail([&] { ws->read_file("inner_link", 1 << 20); }, "symbolic link");  // strict walk: no symlinks
    } else {
        EXPECT_EQ(ws->read_file("inner_link", 1 << 20), "beta\n");
    }
}

TEST_P(WorkspaceTest, WriteReplacesHardLinkInsteadOfWritingThrough) {
    ASSERT_EQ(::link((tmp / "outside.txt").c_str(), (root / "hard.txt").c_str()), 0);
    EXPECT_EQ(ws->write_file("hard.txt", "new"), 3u);
    EXPECT_EQ(read_text(tmp / "outside.txt"), "secret\n");  // the host file is untouched
    EXPECT_EQ(read_text(root / "hard.txt"), "new");
    struct stat st {};
    ASSERT_EQ(::stat((tmp / "outside.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
}

TEST_P(WorkspaceTest, WriteCreatesParentsAndKeepsMode) {
    EXPECT_EQ(ws->write_file("new/deep/file.txt", "hello"), 5u);
    EXPECT_EQ(read_text(root / "new/deep/file.txt"), "hello");
    ::chmod((root / "a.txt").c_str(), 0600);
    ws->write_file("a.txt", "changed");
    struct stat st {};
    ASSERT_EQ(::stat((root / "a.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // No temporary files are left behind.
    for (const auto& e : std::filesystem::directory_iterator(root))
        EXPECT_EQ(e.path().filename().string().find(".qnext-"), std::string::npos) << e.path();
}

TEST_P(WorkspaceTest, WriteRejectsDirectoriesAndMissingParentsOutside) {
    expect_fail([&] { ws->write_file("sub", "x"); }, "is a directory");
    expect_fail([&] { ws->write_file(".", "x"); }, "is a directory");
    expect_fail([&] { ws->write_file("sub/..", "x"); }, "is a directory");
}

TEST_P(WorkspaceTest, ReportsMissingFiles) {
    try {
        ws->read_file("nope.txt", 1 << 20);
        FAIL();
    } catch (const PathError& e) {
        EXPECT_EQ(e.error_code(), ENOENT);
    }
}

TEST_P(WorkspaceTest, RefusesOversizedAndSpecialFiles) {
    write_text(root / "big.txt", std::string(100, 'x'));
    expect_fail([&] { ws->read_file("big.txt", 10); }, "more than the limit");
    ASSERT_EQ(::mkfifo((root / "fifo").c_str(), 0600), 0);
    expect_fail([&] { ws->read_file("fifo", 1 << 20); }, "not a regular file");  // and does not block
}

INSTANTIATE_TEST_SUITE_P(Modes, WorkspaceTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? std::string("StrictWalk") : std::string("Openat2"); });

TEST(Workspace, UsesOpenat2WhereAvailable) {
    TempDir tmp;
    Workspace ws(tmp.path());
    long r = ::syscall(437 /* openat2 */, -1, nullptr, nullptr, 0);
    if (r < 0 && errno == ENOSYS) GTEST_SKIP() << "kernel has no openat2; the strict walk is used";
    EXPECT_TRUE(ws.uses_openat2());
}

TEST(Workspace, RejectsMissingRoot) {
    EXPECT_THROW(Workspace("/nonexistent/qnext/workspace"), std::runtime_error);
}

}  // namespace
}  // namespace qnext::tools
