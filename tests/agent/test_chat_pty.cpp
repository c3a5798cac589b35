// `qnext chat` on a real terminal (a pseudo-terminal, as a user's shell gives it): line editing prompt,
// Ctrl-C at the prompt abandons the line and keeps the program running, a turn streams an answer with
// its stats, /undo and /help work, Ctrl-D quits with exit code 0. The demo model answers (the default).
#include <gtest/gtest.h>

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace {

class PtyChat {
public:
    PtyChat() {
        pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
        if (pid_ == 0) {
            execl(QNEXT_BIN, QNEXT_BIN, "chat", "--max-tokens", "64", static_cast<char*>(nullptr));
            _exit(127);
        }
    }
    ~PtyChat() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) close(fd_);
    }
    bool started() const { return pid_ > 0; }
    void write_keys(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
    // Reads until `needle` appears in the output after position `from` (or the timeout passes).
    bool wait_for(const std::string& needle, size_t from, double seconds = 60) {
        auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (out_.find(needle, from) == std::string::npos) {
            if (std::chrono::steady_clock::now() > end) return false;
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            char buf[4096];
            ssize_t n = read(fd_, buf, sizeof buf);
            if (n <= 0) return out_.find(needle, from) != std::string::npos;
            out_.append(buf, static_cast<size_t>(n));
        }
        return true;
    }
    // Keeps reading the output for `seconds`.
    void collect(double seconds) { wait_for(std::string(1, '\0'), out_.size(), seconds); }
    size_t mark() const { return out_.size(); }
    const std::string& output() const { return out_; }
    int wait_exit(double seconds = 20) {
        auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        int status = 0;
        while (std::chrono::steady_clock::now() < end) {
            collect(0.1);
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
        }
        return -1;
    }

private:
    int fd_ = -1;
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string out_;
};

TEST(ChatPty, CtrlCAtPromptKeepsRunningTurnStreamsCtrlDQuits) {
    PtyChat chat;
    ASSERT_TRUE(chat.started());
    ASSERT_TRUE(chat.wait_for("> ", 0)) << chat.output();
    // Ctrl-C with a half-typed line: the line is dropped, a fresh prompt appears, the program lives on.
    size_t m = chat.mark();
    chat.write_keys("half typed");
    chat.write_keys("\x03");
    ASSERT_TRUE(chat.wait_for("> ", m + 1)) << chat.output();
    m = chat.mark();
    chat.write_keys("/help\r");
    ASSERT_TRUE(chat.wait_for("Ctrl-D quits", m)) << chat.output();
    // A real turn on the demo model: it streams and reports the step's stats.
    m = chat.mark();
    chat.write_keys("What is 3 + 4?\r");
    ASSERT_TRUE(chat.wait_for("[step 0]", m)) << chat.output();
    ASSERT_TRUE(chat.wait_for("> ", chat.output().find("[step 0]", m))) << chat.output();
    m = chat.mark();
    chat.write_keys("/undo\r");
    ASSERT_TRUE(chat.wait_for("last exchange removed", m)) << chat.output();
    ASSERT_TRUE(chat.wait_for("> ", m)) << chat.output();
    chat.collect(0.5);   // let the line editor take the terminal
    chat.write_keys("\x04");                  // Ctrl-D on an empty line
    EXPECT_EQ(chat.wait_exit(), 0) << chat.output();
}

}  // namespace
