#include "model/engine.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

namespace qnext {

Engine::Engine(const Qwen3NextModel& model, int64_t prefill_chunk)
    : model_(model), prefill_chunk_(std::max<int64_t>(1, prefill_chunk)) {
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    // Jobs that never ran or were still running are reported as cancelled.
    for (auto& a : active_) finish(*a, "cancelled");
    for (auto& item : queue_) {
        if (item.job && item.job->controller) item.job->controller->on_finish("cancelled", "");
        if (item.done) item.done->set_exception(std::make_exception_ptr(std::runtime_error("engine stopped")));
    }
}

SeqId Engine::open_sequence(int64_t max_tokens) {
    auto state = std::make_unique<SequenceState>(model_.new_state(max_tokens));
    std::lock_guard lk(mu_);
    SeqId id = next_seq_++;
    states_.emplace(id, std::move(state));
    return id;
}

void Engine::close_sequence(SeqId seq) {
    // Runs in queue order so no job still uses the state.
    with_state(seq, [](SequenceState&) {});
    std::lock_guard lk(mu_);
    states_.erase(seq);
}

void Engine::submit(GenerationJob job) {
    if (!job.controller) throw std::invalid_argument("Engine::submit: a job needs a controller");
    if (!job.cancel) job.cancel = std::make_shared<std::atomic<bool>>(false);
    Item item;
    item.seq = job.seq;
    item.job = std::make_unique<GenerationJob>(std::move(job));
    {
        std::lock_guard lk(mu_);
        if (!states_.count(item.seq)) throw std::invalid_argument("Engine::submit: unknown sequence");
        queue_.push_back(std::move(item));
    }
    cv_.notify_all();
}

void Engine::with_state(SeqId seq, const std::function<void(SequenceState&)>& fn) {
    if (std::this_thread::get_id() == thread_.get_id())
        throw std::logic_error("Engine::with_state called from the engine thread");
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    {
        std::lock_guard lk(mu_);
        if (!states_.count(seq)) throw std::invalid_argument("Engine: unknown sequence " + std::to_string(seq));
        Item item;
        item.seq = seq;
        item.fn = fn;
        item.done = done;
        queue_.push_back(std::move(item));
    }
    cv_.notify_all();
    fut.get();
}

int64_t Engine::n_tokens(SeqId seq) {
    int64_t n = 0;
    with_state(seq, [&](SequenceState& s) { n = s.n_tokens(); });
    return n;
}

SequenceState& Engine::state_of(SeqId seq) {
    std::lock_guard lk(mu_);
    auto it = states_.find(seq);
    if (it == states_.end()) throw std::invalid_argument("Engine: unknown sequence " + std::to_string(seq));
    return *it->second;
}

void Engine::loop() {
    for (;;) {
        std::vector<Item> ready;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
            if (stop_) return;
            // Admit queued items in order; a sequence with a running job keeps its later items queued.
            std::unordered_set<SeqId> busy;
            for (const auto& a : active_) busy.insert(a->job.seq);
            for (auto it = queue_.begin(); it != queue_.end();) {
                if (busy.count(it->seq)) {
                    ++it;
                    continue;
                }
                if (it->job) busy.insert(it->seq);
                ready.push_back(std::move(*it));
                it = queue_.erase(it);
            }
        }
        for (Item& item : ready) {
            if (item.job) {
                auto a = std::make_unique<Active>();
                a->job = std::move(*item.job);
                a->history = a->job.history;
                a->sampler = std::make_unique<Sampler>(a->job.sampling, model_.vocab_size());
                a->mask.resize(mask_words(model_.vocab_size()));
                active_.push_back(std::move(a));
            } else {
                try {
                    item.fn(state_of(item.seq));
                    item.done->set_value();
                } catch (...) {
                    item.done->set_exception(std::current_exception());
                }
            }
        }
        // One round: every active job gets one unit of work.
        for (auto it = active_.begin(); it != active_.end();) {
            bool more = false;
            Active& a = **it;
            if (a.job.cancel->load()) {
                finish(a, "cancelled");
            } else {
                try {
                    more = step(a);
                } catch (const std::exception& e) {
                    finish(a, "error", e.what());
                }
            }
            it = more ? std::next(it) : active_.erase(it);
        }
    }
}

bool Engine::step(Active& a) {
    SequenceState& st = state_of(a.job.seq);
    const auto& prompt = a.job.prompt;
    if (!a.started) {
        a.started = true;
        if (a.job.before) a.job.before(st);
        if (a.job.checkpoint_after == 0) a.job.controller->on_checkpoint(st);
    }
    if (a.prefilled < prompt.size()) {
        size_t n = std::min<size_t>(prefill_chunk_, prompt.size() - a.prefilled);
        const int64_t cp = a.job.checkpoint_after;
        if (cp > static_cast<int64_t>(a.prefilled)) n = std::min<size_t>(n, static_cast<size_t>(cp) - a.prefilled);
        Logits lg = model_.forward(st, std::span<const int32_t>(prompt).subspan(a.prefilled, n), LogitsRows::Last);
        a.prefilled += n;
        if (static_cast<int64_t>(a.prefilled) == cp) a.job.controller->on_checkpoint(st);
        if (a.prefilled < prompt.size()) return true;
        a.job.controller->on_prefill_done(static_cast<int64_t>(prompt.size()));
        if (a.job.max_new_tokens <= 0) {
            finish(a, "stop");
            return false;
        }
        return choose(a, lg.last(), -1);
    }
    if (a.next_token < 0) {
        if (a.job.max_new_tokens > 0) throw std::invalid_argument("generation needs at least one prompt token");
        a.job.controller->on_prefill_done(0);
        finish(a, "stop");
        return false;
    }
    int32_t tok = a.next_token;
    Logits lg = model_.forward(st, std::span<const int32_t>(&tok, 1), LogitsRows::Last);
    return choose(a, lg.last(), a.forced);
}

bool Engine::choose(Active& a, std::span<const float> logits, int32_t forced) {
    int32_t token;
    if (forced >= 0) {
        token = forced;
    } else if (a.job.controller->fill_mask(a.mask.data(), a.mask.size())) {
        token = a.sampler->sample(logits, a.history, a.mask.data());
    } else {
        token = a.sampler->sample(logits, a.history);
    }
    a.generated++;
    a.history.push_back(token);
    TokenDecision d = a.job.controller->on_token(token);
    if (d.stop) {
        finish(a, "stop");
        return false;
    }
    if (a.generated >= a.job.max_new_tokens) {
        finish(a, "length");
        return false;
    }
    a.next_token = token;
    a.forced = d.force_next;
    return true;
}

void Engine::finish(Active& a, const std::string& reason, const std::string& error) {
    if (!a.job.controller) return;
    auto c = std::move(a.job.controller);
    c->on_finish(reason, error);
}

}  // namespace qnext
