#include "agent/server/slots.h"

#include <algorithm>

namespace qnext::agent::server {

SlotPool::SlotPool(std::vector<std::unique_ptr<InProcessBackend>> slots, size_t max_queue) : max_queue_(max_queue) {
    if (slots.empty()) throw std::invalid_argument("SlotPool: at least one slot");
    for (auto& b : slots) slots_.push_back({std::move(b), false, 0});
}

size_t SlotPool::busy() const {
    return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; }));
}

SlotPool::Slot* SlotPool::best_idle(const std::vector<int32_t>& prompt) {
    Slot* best = nullptr;
    size_t best_lcp = 0;
    for (Slot& s : slots_) {
        if (s.busy) continue;
        const auto& t = s.backend->tokens();
        size_t n = std::min(t.size(), prompt.size()), lcp = 0;
        while (lcp < n && t[lcp] == prompt[lcp]) ++lcp;
        if (!best || lcp > best_lcp || (lcp == best_lcp && s.last_used < best->last_used)) {
            best = &s;
            best_lcp = lcp;
        }
    }
    return best;
}

void SlotPool::hand(Slot& s, Ready& ready) {
    s.busy = true;
    s.last_used = ++clock_;
    ready(s.backend.get());
}

std::optional<uint64_t> SlotPool::acquire(std::vector<int32_t> prompt, Ready ready) {
    if (closed_) return std::nullopt;
    uint64_t ticket = next_ticket_++;
    if (queue_.empty())
        if (Slot* s = best_idle(prompt)) {
            hand(*s, ready);
            return ticket;
        }
    if (queue_.size() >= max_queue_) return std::nullopt;
    queue_.push_back({ticket, std::move(prompt), std::move(ready)});
    return ticket;
}

void SlotPool::withdraw(uint64_t ticket) {
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Waiter& w) { return w.ticket == ticket; });
    if (it != queue_.end()) queue_.erase(it);
}

void SlotPool::release(InProcessBackend* backend) {
    for (Slot& s : slots_)
        if (s.backend.get() == backend) s.busy = false;
    while (!queue_.empty()) {
        Slot* s = best_idle(queue_.front().prompt);
        if (!s) return;
        Waiter w = std::move(queue_.front());
        queue_.pop_front();
        hand(*s, w.ready);
    }
}

void SlotPool::shutdown() {
    closed_ = true;
    auto waiting = std::move(queue_);
    queue_.clear();
    for (Waiter& w : waiting) w.ready(nullptr);
}

}  // namespace qnext::agent::server
