// Engine service: one thread owns the model and every sequence state and serves a queue of requests.
//   - generation jobs: prefill tokens, then decode with sampling under an optional token mask, streaming
//     each token to a per-job controller; cancellation at token granularity;
//   - state tasks: arbitrary work on a sequence's state (snapshot, restore, save, load) run in queue order.
// Several sequences (sessions) can be open; the engine thread interleaves active jobs fairly, one decode
// token (or one prefill chunk) per job per round. Controllers are called on the engine thread; they hand
// results to their own threads (e.g. post to an io_context).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/qwen3_next.h"
#include "model/sampler.h"
#include "model/state.h"

namespace qnext {

using SeqId = uint64_t;

// What a generation job's controller decides after each token.
struct TokenDecision {
    bool stop = false;            // end the job after this token (the token is NOT fed to the model)
    int32_t force_next = -1;      // >= 0: the next token is this one instead of a sampled one
};

// Per-job hooks, all called on the engine thread.
class GenerationController {
public:
    virtual ~GenerationController() = default;
    // Called when the prefill has consumed exactly job.checkpoint_after prompt tokens (e.g. to snapshot the
    // state at a turn boundary).
    virtual void on_checkpoint(SequenceState& state) { (void)state; }
    // Called once after the prefill, with the number of prompt tokens computed.
    virtual void on_prefill_done(int64_t computed_tokens) { (void)computed_tokens; }
    // Fills the allowed-token bitset for the next token; return false for "no constraint".
    virtual bool fill_mask(uint32_t* words, size_t n_words) { (void)words; (void)n_words; return false; }
    // A token was chosen (sampled or forced). It will be fed to the model before the next one unless stop.
    virtual TokenDecision on_token(int32_t token) = 0;
    // The job ended: `reason` is "stop" (controller said stop), "length" (max_new_tokens), "cancelled",
    // or "error" (with `error` set). Called exactly once.
    virtual void on_finish(const std::string& reason, const std::string& error) = 0;
};

struct GenerationJob {
    SeqId seq = 0;
    std::function<void(SequenceState&)> before;  // runs on the engine thread first (e.g. restore a snapshot)
    int64_t checkpoint_after = -1;     // call controller->on_checkpoint after this many prompt tokens (-1: never)
    std::vector<int32_t> prompt;       // appended to the sequence before generating (may be empty)
    int64_t max_new_tokens = 0;        // 0 = prefill only
    SamplerParams sampling;
    std::vector<int32_t> history;      // tokens the penalties consider (besides the generated ones)
    std::shared_ptr<GenerationController> controller;
    std::shared_ptr<std::atomic<bool>> cancel;  // set to true to stop at the next token
};

class Engine {
public:
    // `model` must outlive the engine. `prefill_chunk` bounds how many prompt tokens one job computes before
    // other jobs get a turn.
    explicit Engine(const Qwen3NextModel& model, int64_t prefill_chunk = 512);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const Qwen3NextModel& model() const { return model_; }

    // Opens a sequence with room for `max_tokens` positions (memory reserved now; throws with the estimate
    // when it does not fit). Thread-safe.
    SeqId open_sequence(int64_t max_tokens);
    void close_sequence(SeqId seq);

    // Queues a job; returns at once. The controller's on_finish reports the outcome.
    void submit(GenerationJob job);

    // Runs `fn` on the engine thread with the sequence's state, after everything queued before it, and
    // waits for it. Exceptions from fn are rethrown here.
    void with_state(SeqId seq, const std::function<void(SequenceState&)>& fn);

    // Tokens the sequence has consumed.
    int64_t n_tokens(SeqId seq);

private:
    struct Active {
        GenerationJob job;
        size_t prefilled = 0;
        int64_t generated = 0;
        int32_t next_token = -1;          // chosen but not yet fed
        int32_t forced = -1;              // the controller's forced next token
        std::vector<int32_t> history;     // penalties
        std::unique_ptr<Sampler> sampler;
        std::vector<uint32_t> mask;
        bool started = false;
    };
    // A queued request: a generation job, or state work (fn) whose completion is signalled via `done`.
    struct Item {
        SeqId seq = 0;
        std::unique_ptr<GenerationJob> job;
        std::function<void(SequenceState&)> fn;
        std::shared_ptr<std::promise<void>> done;
    };

    void loop();
    bool step(Active& a);  // one unit of work; returns false when the job is finished
    bool choose(Active& a, std::span<const float> logits, int32_t forced);
    void finish(Active& a, const std::string& reason, const std::string& error = {});
    SequenceState& state_of(SeqId seq);

    const Qwen3NextModel& model_;
    int64_t prefill_chunk_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::deque<Item> queue_;
    std::deque<std::unique_ptr<Active>> active_;
    std::unordered_map<SeqId, std::unique_ptr<SequenceState>> states_;
    SeqId next_seq_ = 1;
    std::thread thread_;
};

}  // namespace qnext
