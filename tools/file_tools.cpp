// Built-in file tools, confined to the workspace. Result texts follow tools/format.h.
#include "tools/file_tools.h"

#include <cmath>
#include <optional>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include <re2/re2.h>

#include "tools/format.h"

namespace qnext::tools {
namespace {

using ojson = nlohmann::ordered_json;

ToolResult ok(std::string text) {
    ToolResult r;
    r.text = sanitize_utf8(text);
    return r;
}

ToolResult fail(std::string_view message) {
    ToolResult r;
    r.text = error_text(message);
    r.is_error = true;
    return r;
}

// Error text for a PathError, with the demo model's wording for the common "missing" cases.
// An integer argument in [1, INT64_MAX]. The schema check accepts integral floats as integers (1e23 is one),
// so the value is converted only when it is exactly representable: never a cast of an out-of-range double.
std::optional<std::int64_t> line_arg(const ojson& args, const char* key, std::int64_t dflt, std::string& error) {
    if (!args.contains(key)) return dflt;
    const ojson& v = args[key];
    std::optional<std::int64_t> out;
    if (v.is_number_unsigned()) {
        if (v.get<std::uint64_t>() <= std::uint64_t(INT64_MAX)) out = std::int64_t(v.get<std::uint64_t>());
    } else if (v.is_number_integer()) {
        out = v.get<std::int64_t>();
    } else if (v.is_number_float()) {
        const double d = v.get<double>();
        // 2^63 is exactly representable; every double below it and >= 1 converts exactly once integral.
        if (std::isfinite(d) && std::floor(d) == d && d >= 1.0 && d < 9223372036854775808.0) out = std::int64_t(d);
    }
    if (!out || *out < 1) {
        error = std::string(key) + " must be an integer from 1 to " + std::to_string(INT64_MAX) + ", not " +
                v.dump().substr(0, 64);
        return std::nullopt;
    }
    return out;
}

ToolResult path_fail(const PathError& e, const std::string& path, const char* missing_what) {
    if (e.error_code() == ENOENT) return fail(std::string("no such ") + missing_what + ": " + path);
    return fail(e.what());
}

// Entries of an open directory (without "." and ".."), sorted by name (byte order).
std::vector<std::string> sorted_entries(int dirfd) {
    std::vector<std::string> names;
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw PathError(std::string("cannot list directory: ") + std::strerror(errno), errno);
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        throw PathError(std::string("cannot list directory: ") + std::strerror(errno), errno);
    }
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

// Splits text into lines that keep their "\n" (like Python's splitlines(keepends=True) for "\n").
std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t j = text.find('\n', i);
        j = j == std::string_view::npos ? text.size() : j + 1;
        lines.push_back(text.substr(i, j - i));
        i = j;
    }
    return lines;
}

ToolResult read_file(const Workspace& ws, const ojson& args, const FileToolLimits& lim) {
    const std::string path = args.at("path").get<std::string>();
    std::string data;
    try {
        data = ws.read_file(path, lim.max_file_bytes);
    } catch (const PathError& e) {
        return path_fail(e, path, "file");
    }
    if (data.find('\0') != std::string::npos)
        return fail(path + " is a binary file (" + std::to_string(data.size()) + " bytes)");
    if (!args.contains("start_line") && !args.contains("end_line")) return ok(std::move(data));
    const std::vector<std::string_view> lines = split_lines(data);
    const auto n = static_cast<std::int64_t>(lines.size());
    std::string bad;
    const std::optional<std::int64_t> start = line_arg(args, "start_line", 1, bad);
    const std::optional<std::int64_t> end = line_arg(args, "end_line", std::max<std::int64_t>(n, 1), bad);
    if (!start || !end) return fail(bad);
    const std::int64_t lo = *start;
    const std::int64_t hi = std::min(*end, n);
    if (args.contains("end_line") && *end < lo)
        return fail("end_line " + std::to_string(*end) + " is before start_line " + std::to_string(lo));
    if (lo > n && lo > 1)
        return fail("start_line " + std::to_string(lo) + " is past the end of " + path + " (" + std::to_string(n) +
                    " lines)");
    std::string text;
    for (std::int64_t i = lo; i <= hi; ++i) text += lines[static_cast<std::size_t>(i - 1)];
    return ok(std::move(text));
}

ToolResult write_file(const Workspace& ws, const ojson& args) {
    const std::string path = args.at("path").get<std::string>();
    const std::string& content = args.at("content").get_ref<const std::string&>();
    try {
        std::size_t n = ws.write_file(path, content);
        return ok("wrote " + std::to_string(n) + " bytes to " + path);
    } catch (const PathError& e) {
        return path_fail(e, path, "directory");
    }
}

ToolResult edit_file(const Workspace& ws, const ojson& args, const FileToolLimits& lim) {
    const std::string path = args.at("path").get<std::string>();
    const std::string& old_text = args.at("old_text").get_ref<const std::string&>();
    const std::string& new_text = args.at("new_text").get_ref<const std::string&>();
    if (old_text.empty()) return fail("old_text is empty; give the exact text to replace");
    try {
        std::string data = ws.read_file(path, lim.max_file_bytes);
        std::size_t count = 0, first = std::string::npos;
        for (std::size_t pos = data.find(old_text); pos != std::string::npos; pos = data.find(old_text, pos + 1)) {
            if (count++ == 0) first = pos;
        }
        if (count == 0) return fail("old_text not found in " + path);
        if (count > 1)
            return fail("old_text occurs " + std::to_string(count) + " times in " + path +
                        "; include more surrounding text so that it matches exactly once");
        data.replace(first, old_text.size(), new_text);
        ws.write_file(path, data);
        return ok("replaced 1 occurrence in " + path);
    } catch (const PathError& e) {
        return path_fail(e, path, "file");
    }
}

ToolResult list_dir(const Workspace& ws, const ojson& args, const FileToolLimits& lim) {
    const std::string path = args.at("path").get<std::string>();
    try {
        UniqueFd dir = ws.open_dir(path);
        std::vector<std::string> names = sorted_entries(dir.get());
        if (names.empty()) return ok("(empty)");
        std::string text;
        std::size_t shown = 0;
        for (const std::string& n : names) {
            if (shown == lim.max_list_entries) {
                text += "... and " + std::to_string(names.size() - shown) + " more entries\n";
                break;
            }
            struct stat st {};
            std::string line = n;
            if (::fstatat(dir.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISDIR(st.st_mode)) {
                    line += "/";
                } else if (S_ISLNK(st.st_mode)) {
                    char target[4096];
                    ssize_t k = ::readlinkat(dir.get(), n.c_str(), target, sizeof target);
                    if (k >= 0) line += " -> " + std::string(target, static_cast<std::size_t>(k));
                }
            }
            text += line + "\n";
            ++shown;
        }
        text.pop_back();
        return ok(std::move(text));
    } catch (const PathError& e) {
        return path_fail(e, path, "directory");
    }
}

// grep state shared by the recursive walk.
struct GrepRun {
    const RE2& re;
    const FileToolLimits& lim;
    const std::atomic<bool>& stop;
    std::string out;
    std::size_t matches = 0;
    std::size_t files = 0;
    bool more = false;  // stopped at a limit

    bool full() { return matches >= lim.max_grep_matches || files >= lim.max_grep_files; }

    void file(int fd, const std::string& shown) {
        ++files;
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
        if (static_cast<std::size_t>(st.st_size) > lim.max_file_bytes) return;
        std::string data(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        while (got < data.size()) {
            ssize_t n = ::read(fd, data.data() + got, data.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        data.resize(got);
        if (data.find('\0') != std::string::npos) return;  // binary
        std::size_t line_no = 0;
        for (std::string_view line : split_lines(data)) {
            ++line_no;
            if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
            if (!RE2::PartialMatch(line, re)) continue;
            if (matches == lim.max_grep_matches) {
                more = true;
                return;
            }
            ++matches;
            std::string shown_line(line.substr(0, lim.max_grep_line));
            if (line.size() > lim.max_grep_line) shown_line = cap_text(std::move(shown_line), lim.max_grep_line) + "...";
            out += shown + ":" + std::to_string(line_no) + ":" + shown_line + "\n";
        }
    }

    void dir(int dirfd, const std::string& shown, int depth) {
        if (depth > 64) return;
        for (const std::string& n : sorted_entries(dirfd)) {
            if (stop.load() || more) return;
            if (full()) {
                more = true;
                return;
            }
            struct stat st {};
            if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            const std::string child = shown.empty() ? n : shown + "/" + n;
            if (S_ISDIR(st.st_mode)) {
                UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
                if (sub) dir(sub.get(), child, depth + 1);
            } else if (S_ISREG(st.st_mode)) {
                UniqueFd f(::openat(dirfd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
                if (f) file(f.get(), child);
            }
        }
    }
};

ToolResult grep(const Workspace& ws, const ojson& args, const std::atomic<bool>& stop, const FileToolLimits& lim) {
    const std::string& pattern = args.at("pattern").get_ref<const std::string&>();
    std::string path = args.value("path", std::string("."));
    RE2 re(pattern, RE2::Quiet);
    if (!re.ok()) return fail("invalid regular expression: " + re.error());
    try {
        path = Workspace::check_relative(path);
        UniqueFd target = ws.open(path, O_RDONLY | O_NONBLOCK);
        struct stat st {};
        if (::fstat(target.get(), &st) != 0) return fail(path + ": " + std::strerror(errno));
        GrepRun run{re, lim, stop, {}, 0, 0, false};
        if (S_ISDIR(st.st_mode)) {
            run.dir(target.get(), path == "." ? "" : path, 0);
        } else {
            run.file(target.get(), path);
        }
        if (stop.load()) {
            ToolResult r = fail("cancelled");
            r.cancelled = true;
            return r;
        }
        if (run.matches == 0) return ok("(no matches)");
        if (run.more) run.out += "[more matches not shown; narrow the pattern or the path]\n";
        run.out.pop_back();
        return ok(std::move(run.out));
    } catch (const PathError& e) {
        return path_fail(e, path, "file or directory");
    }
}

}  // namespace

bool is_file_tool(const std::string& name) {
    return name == "read_file" || name == "write_file" || name == "edit_file" || name == "list_dir" ||
           name == "grep";
}

ToolResult run_file_tool(const std::string& name, const Workspace& ws, const ojson& args,
                         const std::atomic<bool>& stop, const FileToolLimits& limits) {
    try {
        if (name == "read_file") return read_file(ws, args, limits);
        if (name == "write_file") return write_file(ws, args);
        if (name == "edit_file") return edit_file(ws, args, limits);
        if (name == "list_dir") return list_dir(ws, args, limits);
        if (name == "grep") return grep(ws, args, stop, limits);
        return fail("unknown file tool: " + name);
    } catch (const std::exception& e) {  // json access on arguments that bypassed the schema check
        return fail(e.what());
    }
}

}  // namespace qnext::tools
