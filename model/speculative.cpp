// Greedy decoding with MTP self-speculation (see speculative.h).
#include "model/speculative.h"

#include <algorithm>
#include <stdexcept>

#include "model/sampler.h"

namespace qnext {
namespace {

int32_t argmax(std::span<const float> row) {
    return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

// The plain greedy choice under the constraint's mask, and the bookkeeping of one emitted token.
class Chooser {
public:
    Chooser(const Qwen3NextModel& m, const GreedyOptions& o, GreedyGeneration& out)
        : o_(o), out_(out), sampler_(SamplerParams{}, m.vocab_size()), mask_((static_cast<size_t>(m.vocab_size()) + 31) / 32) {}

    int32_t choose(std::span<const float> logits) {
        if (o_.fill_mask) {
            std::fill(mask_.begin(), mask_.end(), ~0u);
            if (o_.fill_mask(mask_.data(), mask_.size())) return sampler_.sample(logits, {}, mask_.data());
        }
        return sampler_.sample(logits);
    }
    // Records `t`; true when generation ends with it (a stop token, the constraint says so, or max tokens).
    bool emit(int32_t t) {
        out_.tokens.push_back(t);
        const bool stop = std::find(o_.stop_ids.begin(), o_.stop_ids.end(), t) != o_.stop_ids.end();
        const bool more = o_.on_token ? o_.on_token(t) : true;
        if (stop || !more) {
            out_.finish = "stop";
            return true;
        }
        if (static_cast<int64_t>(out_.tokens.size()) >= o_.max_new_tokens) {
            out_.finish = "length";
            return true;
        }
        return false;
    }
    int64_t remaining() const { return o_.max_new_tokens - static_cast<int64_t>(out_.tokens.size()); }

private:
    const GreedyOptions& o_;
    GreedyGeneration& out_;
    Sampler sampler_;
    std::vector<uint32_t> mask_;
};

}  // namespace

GreedyGeneration greedy_generate(const Qwen3NextModel& model_in, SequenceState& st, SequenceState* mst,
                                 std::span<const int32_t> prompt, const GreedyOptions& o) {
    if (prompt.empty()) throw std::invalid_argument("greedy_generate: empty prompt");
    if (o.speculative < 0 || o.speculative > 8) throw std::invalid_argument("greedy_generate: speculative must be 0..8");
    GreedyGeneration out;
    out.finish = "length";
    if (o.max_new_tokens <= 0) {
        model_in.forward(st, prompt);
        return out;
    }
    Chooser ch(model_in, o, out);
    const int64_t H = model_in.config().hidden_size;
    if (o.speculative == 0) {   // plain greedy decoding: one token per forward
        Logits l = model_in.forward(st, prompt);
        for (;;) {
            const int32_t t = ch.choose(l.last());
            if (ch.emit(t)) return out;
            l = model_in.forward(st, std::span<const int32_t>(&t, 1));
        }
    }
    if (!model_in.has_mtp()) throw std::runtime_error("speculative decoding needs an MTP head (the model has no mtp.* tensors)");
    if (!mst) throw std::invalid_argument("greedy_generate: speculative decoding needs an MTP state");
    if (st.n_tokens() != 0 || mst->n_tokens() != 0)
        throw std::invalid_argument("greedy_generate: speculative decoding starts on a fresh sequence and MTP state");
    // Verification and recomputation in the recurrent GDN form: the same arithmetic as token-by-token decoding.
    Qwen3NextModel model = model_in;
    model.set_gdn_mode(GdnMode::Recurrent);
    const int k = o.speculative;
    out.stats.drafted_at_depth.assign(static_cast<size_t>(k), 0);
    out.stats.accepted_at_depth.assign(static_cast<size_t>(k), 0);

    // Prefill: the main model over the prompt, then the MTP's cache over (hidden(p), token p+1).
    std::vector<float> hidden;
    Logits l = model_in.forward_hidden(st, prompt, hidden);
    const int64_t T = static_cast<int64_t>(prompt.size());
    if (T > 1)
        model.mtp_forward(*mst, std::span<const float>(hidden.data(), static_cast<size_t>((T - 1) * H)),
                          prompt.subspan(1), LogitsRows::Last);
    std::vector<float> h_last(hidden.end() - H, hidden.end());   // hidden of the last fed position
    int32_t pending = ch.choose(l.last());                          // chosen, emitted, not fed
    if (ch.emit(pending)) return out;

    std::vector<int32_t> chunk;
    std::vector<float> h_mtp, verify_hidden;
    for (;;) {
        const int64_t n = st.n_tokens();   // `pending` goes to position n; the MTP holds positions < n - 1
        const int kk = static_cast<int>(std::min<int64_t>(k, ch.remaining() - 1));
        // Draft: the MTP's entry for position n-1 is (h_last, pending); chained from there on its own output.
        chunk.assign(1, pending);
        std::vector<float> h_in = h_last;
        int32_t tok = pending;
        for (int j = 0; j < std::max(kk, 1); ++j) {
            Logits d = model.mtp_forward(*mst, h_in, std::span<const int32_t>(&tok, 1), LogitsRows::Last, &h_mtp);
            if (j >= kk) break;   // kk == 0: only the MTP entry for position n-1
            tok = argmax(d.last());
            chunk.push_back(tok);
            h_in = h_mtp;
        }
        if (kk == 0) {   // no room for drafts: one plain step
            Logits p = model.forward(st, std::span<const int32_t>(&pending, 1), LogitsRows::Last, &h_last);
            pending = ch.choose(p.last());
            if (ch.emit(pending)) return out;
            continue;
        }
        // Verify all kk drafts (and `pending`) with one forward of the main model.
        const SequenceState::Snapshot snap = st.snapshot();
        Logits v = model.forward(st, chunk, LogitsRows::All, &verify_hidden);
        ++out.stats.verify_steps;
        int a = 0;          // drafts accepted
        bool ended = false;
        for (int j = 0; j <= kk; ++j) {
            const int32_t y = ch.choose(v.row(j));
            if (j < kk) ++out.stats.drafted_at_depth[static_cast<size_t>(j)], ++out.stats.drafted;
            const bool match = j < kk && y == chunk[static_cast<size_t>(j) + 1];
            if (match) ++out.stats.accepted_at_depth[static_cast<size_t>(j)], ++out.stats.accepted;
            pending = y;
            ended = ch.emit(y);
            if (ended || !match) break;
            ++a;
        }
        // The fed tokens that stay: pending(old) and the accepted drafts, positions n .. n + a.
        if (a < kk) {
            st.restore(snap);
            model.forward(st, std::span<const int32_t>(chunk).subspan(0, static_cast<size_t>(a) + 1), LogitsRows::Last);
            out.stats.recomputed_tokens += a + 1;
        }
        if (ended) return out;
        // MTP: keep positions < n (the entry for n-1 made while drafting), then the main model's own hidden
        // states for the accepted positions n .. n + a - 1 with their next tokens.
        mst->truncate(n);
        if (a > 0)
            model.mtp_forward(*mst, std::span<const float>(verify_hidden.data(), static_cast<size_t>(a * H)),
                              std::span<const int32_t>(chunk).subspan(1, static_cast<size_t>(a)), LogitsRows::Last);
        h_last.assign(verify_hidden.begin() + a * H, verify_hidden.begin() + (a + 1) * H);
    }
}

}  // namespace qnext
