// The in-process file tools: exact result texts (tools/format.h, shared with the demo model's training data)
// and confinement to the workspace.
#include <atomic>

#include <gtest/gtest.h>

#include "tests/tools/temp_dir.h"
#include "tools/file_tools.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;
using testing::read_text;
using testing::TempDir;
using testing::write_text;

class FileTools : public ::testing::Test {
protected:
    void SetUp() override {
        root = tmp / "ws";
        std::filesystem::create_directories(root / "src" / "deep");
        write_text(root / "notes.txt", "one\ntwo\nthree\n");
        write_text(root / "src" / "main.py", "import os\nprint('hello')\n# TODO: fix\n");
        write_text(root / "src" / "deep" / "util.py", "def f():\n    return 42  # TODO later\n");
        write_text(tmp / "secret.txt", "TODO secret\n");
        ws = std::make_unique<Workspace>(root);
    }
    ToolResult run(const std::string& name, const ojson& args, const FileToolLimits& lim = {}) {
        return run_file_tool(name, *ws, args, stop, lim);
    }
    TempDir tmp;
    std::filesystem::path root;
    std::unique_ptr<Workspace> ws;
    std::atomic<bool> stop{false};
};

TEST_F(FileTools, ReadFileWholeAndRanges) {
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}}).text, "one\ntwo\nthree\n");
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"start_line", 2}}).text, "two\nthree\n");
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"start_line", 2}, {"end_line", 2}}).text, "two\n");
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"end_line", 1}}).text, "one\n");
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"start_line", 3}, {"end_line", 99}}).text, "three\n");
    ToolResult r = run("read_file", {{"path", "notes.txt"}, {"start_line", 3}, {"end_line", 2}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: end_line 2 is before start_line 3");
    r = run("read_file", {{"path", "notes.txt"}, {"start_line", 9}});
    EXPECT_EQ(r.text, "error: start_line 9 is past the end of notes.txt (3 lines)");
}

// Integral floats pass the schema's "integer" check; out-of-range ones used to be cast to int64 (undefined
// behaviour; 1e23 crashed on the file-pool thread) and huge unsigned values wrapped to -1 (an out-of-bounds read).
TEST_F(FileTools, ReadFileLineNumbersOutOfRange) {
    for (const ojson& bad : {ojson(1e23), ojson(-1e23), ojson(9223372036854775808.0), ojson(1.5), ojson(0),
                             ojson(-3), ojson(18446744073709551615ull), ojson(9223372036854775808ull), ojson("2")}) {
        for (const char* key : {"start_line", "end_line"}) {
            ToolResult r = run("read_file", {{"path", "notes.txt"}, {key, bad}});
            EXPECT_TRUE(r.is_error) << key << " = " << bad.dump();
            EXPECT_EQ(r.text, std::string("error: ") + key + " must be an integer from 1 to 9223372036854775807, not " +
                                  bad.dump())
                << r.text;
        }
    }
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"start_line", 2.0}}).text, "two\nthree\n");
    EXPECT_EQ(run("read_file", {{"path", "notes.txt"}, {"end_line", 9223372036854775807ll}}).text, "one\ntwo\nthree\n");
}

TEST_F(FileTools, ReadFileErrors) {
    ToolResult r = run("read_file", {{"path", "missing.txt"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: no such file: missing.txt");
    EXPECT_EQ(run("read_file", {{"path", "src"}}).text, "error: src is a directory");
    write_text(root / "bin.dat", std::string("ab\0cd", 5));
    EXPECT_EQ(run("read_file", {{"path", "bin.dat"}}).text, "error: bin.dat is a binary file (5 bytes)");
    EXPECT_EQ(run("read_file", {{"path", "../secret.txt"}}).text, "error: path ../secret.txt is outside the workspace");
    EXPECT_EQ(run("read_file", {{"path", "/etc/passwd"}}).text,
              "error: path /etc/passwd is absolute; use a path relative to the workspace");
}

TEST_F(FileTools, ReadFileSanitizesInvalidUtf8) {
    write_text(root / "latin1.txt", "caf\xE9\n");
    EXPECT_EQ(run("read_file", {{"path", "latin1.txt"}}).text, "caf\xEF\xBF\xBD\n");
}

TEST_F(FileTools, WriteFileFormatAndContent) {
    ToolResult r = run("write_file", {{"path", "out/result.txt"}, {"content", "héllo\n"}});
    EXPECT_FALSE(r.is_error);
    EXPECT_EQ(r.text, "wrote 7 bytes to out/result.txt");  // UTF-8 bytes, path as given
    EXPECT_EQ(read_text(root / "out/result.txt"), "héllo\n");
    EXPECT_EQ(run("write_file", {{"path", "empty.txt"}, {"content", ""}}).text, "wrote 0 bytes to empty.txt");
    r = run("write_file", {{"path", "../escape.txt"}, {"content", "x"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_FALSE(std::filesystem::exists(tmp / "escape.txt"));
}

TEST_F(FileTools, EditFileExactlyOnce) {
    ToolResult r = run("edit_file", {{"path", "notes.txt"}, {"old_text", "two"}, {"new_text", "TWO"}});
    EXPECT_FALSE(r.is_error) << r.text;
    EXPECT_EQ(r.text, "replaced 1 occurrence in notes.txt");
    EXPECT_EQ(read_text(root / "notes.txt"), "one\nTWO\nthree\n");

    r = run("edit_file", {{"path", "notes.txt"}, {"old_text", "four"}, {"new_text", "4"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: old_text not found in notes.txt");

    write_text(root / "dup.txt", "x = 1\nx = 1\n");
    r = run("edit_file", {{"path", "dup.txt"}, {"old_text", "x = 1"}, {"new_text", "y"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text, "error: old_text occurs 2 times in dup.txt; include more surrounding text so that it matches "
                      "exactly once");
    EXPECT_EQ(read_text(root / "dup.txt"), "x = 1\nx = 1\n");  // unchanged

    write_text(root / "overlap.txt", "aaa");
    r = run("edit_file", {{"path", "overlap.txt"}, {"old_text", "aa"}, {"new_text", "b"}});
    EXPECT_TRUE(r.is_error) << "overlapping matches are ambiguous too";

    EXPECT_TRUE(run("edit_file", {{"path", "notes.txt"}, {"old_text", ""}, {"new_text", "x"}}).is_error);
    EXPECT_EQ(run("edit_file", {{"path", "nope.txt"}, {"old_text", "a"}, {"new_text", "b"}}).text,
              "error: no such file: nope.txt");
}

TEST_F(FileTools, ListDirFormat) {
    std::filesystem::create_symlink("notes.txt", root / "link");
    EXPECT_EQ(run("list_dir", {{"path", "."}}).text, "link -> notes.txt\nnotes.txt\nsrc/");
    EXPECT_EQ(run("list_dir", {{"path", "src"}}).text, "deep/\nmain.py");
    std::filesystem::create_directory(root / "empty");
    EXPECT_EQ(run("list_dir", {{"path", "empty"}}).text, "(empty)");
    EXPECT_EQ(run("list_dir", {{"path", "nope"}}).text, "error: no such directory: nope");
    EXPECT_EQ(run("list_dir", {{"path", "notes.txt"}}).text, "error: not a directory: notes.txt");
    EXPECT_TRUE(run("list_dir", {{"path", ".."}}).is_error);
    FileToolLimits lim;
    lim.max_list_entries = 2;
    EXPECT_EQ(run("list_dir", {{"path", "."}}, lim).text, "empty/\nlink -> notes.txt\n... and 2 more entries");
}

TEST_F(FileTools, GrepRecursiveSortedAndConfined) {
    std::filesystem::create_directory_symlink(tmp.path(), root / "escape");  // must not be followed
    ToolResult r = run("grep", {{"pattern", "TODO"}});
    EXPECT_FALSE(r.is_error) << r.text;
    EXPECT_EQ(r.text, "src/deep/util.py:2:    return 42  # TODO later\nsrc/main.py:3:# TODO: fix");
    EXPECT_EQ(run("grep", {{"pattern", "^print"}, {"path", "src"}}).text, "src/main.py:2:print('hello')");
    EXPECT_EQ(run("grep", {{"pattern", "t[wh]"}, {"path", "notes.txt"}}).text, "notes.txt:2:two\nnotes.txt:3:three");
    EXPECT_EQ(run("grep", {{"pattern", "zzz"}}).text, "(no matches)");
    r = run("grep", {{"pattern", "(unclosed"}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text.rfind("error: invalid regular expression:", 0), 0u) << r.text;
    EXPECT_TRUE(run("grep", {{"pattern", "TODO"}, {"path", "escape"}}).is_error);
    EXPECT_TRUE(run("grep", {{"pattern", "TODO"}, {"path", "../secret.txt"}}).is_error);
}

TEST_F(FileTools, GrepLimitsAndBinarySkip) {
    std::string many;
    for (int i = 0; i < 10; ++i) many += "match " + std::to_string(i) + "\n";
    write_text(root / "many.txt", many);
    write_text(root / "bin.dat", std::string("match\0", 6));
    FileToolLimits lim;
    lim.max_grep_matches = 3;
    ToolResult r = run("grep", {{"pattern", "match"}}, lim);
    EXPECT_EQ(r.text, "many.txt:1:match 0\nmany.txt:2:match 1\nmany.txt:3:match 2\n"
                      "[more matches not shown; narrow the pattern or the path]");
}

TEST_F(FileTools, GrepStopsWhenCancelled) {
    stop = true;
    ToolResult r = run("grep", {{"pattern", "TODO"}});
    EXPECT_TRUE(r.cancelled);
    EXPECT_TRUE(r.is_error);
}

TEST_F(FileTools, UnknownToolAndBadArgumentsNeverThrow) {
    EXPECT_TRUE(run("delete_everything", {{"path", "."}}).is_error);
    ToolResult r = run("read_file", {{"wrong", 1}});
    EXPECT_TRUE(r.is_error);
    EXPECT_EQ(r.text.rfind("error: ", 0), 0u);
}

}  // namespace
}  // namespace qnext::tools
