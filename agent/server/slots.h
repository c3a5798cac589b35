// The server's generation slots: `--parallel N` in-process backends, each owning one engine sequence and the
// state it holds (tokens + turn-boundary checkpoints, see inprocess_backend.h). A request goes to the idle slot
// whose kept tokens share the longest prefix with its prompt, so a client re-sending a growing conversation
// resumes where its previous turn ended (prefill of the new tokens only); ties go to the least recently used
// slot. When every slot is busy the request waits in a bounded FIFO queue. All calls on the io thread.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "agent/inprocess_backend.h"

namespace qnext::agent::server {

class SlotPool {
public:
    // `ready` gets the slot's backend; nullptr when the pool is shut down before a slot became free.
    using Ready = std::function<void(InProcessBackend*)>;

    SlotPool(std::vector<std::unique_ptr<InProcessBackend>> slots, size_t max_queue);

    // Hands a slot to `ready` at once (before returning) when one is idle; else queues the request. Returns the
    // ticket (for withdraw), or nullopt when the queue is full (the caller answers 429).
    std::optional<uint64_t> acquire(std::vector<int32_t> prompt, Ready ready);
    // A queued request whose client went away; no-op when already served.
    void withdraw(uint64_t ticket);
    // The generation on `slot` is done: the slot serves the next queued request.
    void release(InProcessBackend* slot);
    // Fails every queued request (ready(nullptr)) and refuses new ones.
    void shutdown();

    size_t size() const { return slots_.size(); }
    size_t queued() const { return queue_.size(); }
    size_t busy() const;
    InProcessBackend& any() { return *slots_.front().backend; }   // rendering / tokenizing helper

private:
    struct Slot {
        std::unique_ptr<InProcessBackend> backend;
        bool busy = false;
        uint64_t last_used = 0;
    };
    struct Waiter {
        uint64_t ticket;
        std::vector<int32_t> prompt;
        Ready ready;
    };
    Slot* best_idle(const std::vector<int32_t>& prompt);
    void hand(Slot& s, Ready& ready);

    std::vector<Slot> slots_;
    std::deque<Waiter> queue_;
    size_t max_queue_;
    uint64_t next_ticket_ = 1, clock_ = 0;
    bool closed_ = false;
};

}  // namespace qnext::agent::server
