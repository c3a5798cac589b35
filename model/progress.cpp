// Progress bar on stderr (TTY only).
#include "model/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qnext {
namespace {

std::string amount(uint64_t v, const std::string& unit) {
    char buf[64];
    if (unit != "B") {
        std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
        return buf;
    }
    const double d = static_cast<double>(v);
    if (d >= 1073741824.0) std::snprintf(buf, sizeof buf, "%.2f GiB", d / 1073741824.0);
    else if (d >= 1048576.0) std::snprintf(buf, sizeof buf, "%.1f MiB", d / 1048576.0);
    else std::snprintf(buf, sizeof buf, "%.1f KiB", d / 1024.0);
    return buf;
}

}  // namespace

bool ProgressBar::stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled && stderr_is_tty()) {
    draw(true);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(uint64_t n) { set(done_ + n); }

void ProgressBar::set(uint64_t done) {
    done_ = done > total_ ? total_ : done;
    draw(false);
}

void ProgressBar::finish() {
    if (!enabled_ || finished_) return;
    done_ = total_;
    draw(true);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    finished_ = true;
}

void ProgressBar::draw(bool force) {
    if (!enabled_ || finished_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "\r%s [%s] %3d%% %s/%s", label_.c_str(), bar.c_str(), static_cast<int>(frac * 100.0),
                 amount(done_, unit_).c_str(), amount(total_, unit_).c_str());
    std::fflush(stderr);
}

}  // namespace qnext
