// A one-line progress bar on stderr ("loading [#####.....]  42% 1.2/2.9 GiB"), redrawn at most
// ~10 times per second. Drawn only when enabled and stderr is a TTY; otherwise every call is a no-op.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace qnext {

class ProgressBar {
public:
    // `total` in `unit`s; unit "B" prints sizes in KiB/MiB/GiB.
    ProgressBar(std::string label, uint64_t total, bool enabled, std::string unit = "B");
    ~ProgressBar();   // finishes the line if still drawing
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void advance(uint64_t n);
    void set(uint64_t done);
    void finish();
    bool active() const { return enabled_; }

    static bool stderr_is_tty();

private:
    void draw(bool force);
    std::string label_, unit_;
    uint64_t total_ = 0, done_ = 0;
    bool enabled_ = false, finished_ = false;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace qnext
