#include "model/state.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "model/forward_limits.h"

namespace qnext {

namespace {

std::atomic<uint64_t> g_next_id{1};

std::string mib(uint64_t bytes) {
    std::ostringstream o;
    o.precision(1);
    o << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
    return o.str();
}

void copy_rows(const kern::TensorBuffer& src, const kern::TensorBuffer& dst, int64_t rows) {
    const kern::Tensor& s = src.t();
    if (rows <= 0) return;
    const size_t row_bytes = s.nbytes() / static_cast<size_t>(s.shape[0]);
    std::memcpy(dst.t().data, s.data, row_bytes * static_cast<size_t>(rows));
}

}  // namespace

uint64_t SequenceState::next_state_id() { return g_next_id.fetch_add(1); }

uint64_t available_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit)
        if (key == "MemAvailable:") return kib * 1024;
    throw std::runtime_error("cannot read MemAvailable from /proc/meminfo");
}

StateMemoryEstimate SequenceState::estimate(const Qwen3NextConfig& c, int64_t max_tokens) {
    StateMemoryEstimate e;
    const uint64_t n = static_cast<uint64_t>(std::max<int64_t>(max_tokens, 0));
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        if (c.is_full_attention(l)) {
            e.kv_bytes += 2 * n * c.num_key_value_heads * c.head_dim * sizeof(float);
        } else {
            e.gdn_bytes += static_cast<uint64_t>(c.linear_num_value_heads) * c.linear_key_head_dim *
                           c.linear_value_head_dim * sizeof(float);
            e.gdn_bytes += static_cast<uint64_t>(c.linear_conv_kernel_dim - 1) * c.linear_conv_dim() * sizeof(float);
        }
    }
    e.scratch_bytes = forward_scratch_bytes(c, std::min<int64_t>(max_tokens, kForwardPieceTokens));
    return e;
}

SequenceState::SequenceState(const Qwen3NextConfig& c, int64_t max_tokens, std::optional<uint64_t> limit)
    : config_(&c), capacity_(max_tokens) {
    if (max_tokens <= 0) throw std::runtime_error("sequence state: context size must be positive");
    if (max_tokens > c.max_position_embeddings)
        throw std::runtime_error("sequence state: context of " + std::to_string(max_tokens) +
                                 " tokens exceeds max_position_embeddings = " +
                                 std::to_string(c.max_position_embeddings));
    const StateMemoryEstimate est = estimate(c, max_tokens);
    const uint64_t avail = limit ? *limit : available_memory_bytes();
    if (est.total() > avail)
        throw std::runtime_error("sequence state: a context of " + std::to_string(max_tokens) + " tokens needs " +
                                 mib(est.total()) + " (KV cache " + mib(est.kv_bytes) + ", GDN state " +
                                 mib(est.gdn_bytes) + ", activations " + mib(est.scratch_bytes) + ") but only " +
                                 mib(avail) + " is available");
    id_ = next_state_id();
    slot_.assign(c.num_hidden_layers, -1);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        if (c.is_full_attention(l)) {
            slot_[l] = static_cast<int>(k_.size());
            k_.emplace_back(kern::DType::F32, std::initializer_list<int64_t>{max_tokens, c.num_key_value_heads, c.head_dim});
            v_.emplace_back(kern::DType::F32, std::initializer_list<int64_t>{max_tokens, c.num_key_value_heads, c.head_dim});
        } else {
            slot_[l] = static_cast<int>(conv_.size());
            conv_.emplace_back(kern::DType::F32,
                               std::initializer_list<int64_t>{c.linear_conv_kernel_dim - 1, c.linear_conv_dim()});
            rec_.emplace_back(kern::DType::F32, std::initializer_list<int64_t>{
                                                    c.linear_num_value_heads, c.linear_key_head_dim,
                                                    c.linear_value_head_dim});
        }
    }
}

const kern::Tensor& SequenceState::keys(int64_t l) const {
    if (l < 0 || l >= config_->num_hidden_layers || !config_->is_full_attention(l))
        throw std::runtime_error("sequence state: layer " + std::to_string(l) + " has no KV cache");
    return k_[slot_[l]].t();
}
const kern::Tensor& SequenceState::values(int64_t l) const {
    keys(l);
    return v_[slot_[l]].t();
}
const kern::Tensor& SequenceState::conv(int64_t l) const {
    if (l < 0 || l >= config_->num_hidden_layers || config_->is_full_attention(l))
        throw std::runtime_error("sequence state: layer " + std::to_string(l) + " is not a GDN layer");
    return conv_[slot_[l]].t();
}
const kern::Tensor& SequenceState::recurrent(int64_t l) const {
    conv(l);
    return rec_[slot_[l]].t();
}

void SequenceState::begin_append(int64_t t) {
    if (n_tokens_ + t > capacity_)
        throw std::runtime_error("sequence state: " + std::to_string(n_tokens_) + " + " + std::to_string(t) +
                                 " tokens exceed the reserved context of " + std::to_string(capacity_));
    if (n_tokens_ < high_water_) {  // rewriting KV rows that a snapshot may rely on
        ++epoch_;
        overwrite_from_.push_back(n_tokens_);
    }
    high_water_ = std::max(high_water_, n_tokens_ + t);
}

void SequenceState::skip_to_for_benchmark(int64_t n) {
    if (n < n_tokens_) throw std::runtime_error("sequence state: cannot skip backwards");
    begin_append(n - n_tokens_);
    n_tokens_ = n;
}

SequenceState::Snapshot SequenceState::snapshot() const {
    Snapshot s;
    s.owner = id_;
    s.n_tokens = n_tokens_;
    s.epoch = epoch_;
    s.conv.reserve(conv_.size());
    s.recurrent.reserve(rec_.size());
    for (const auto& b : conv_) s.conv.push_back(b.clone());
    for (const auto& b : rec_) s.recurrent.push_back(b.clone());
    return s;
}

void SequenceState::restore(const Snapshot& s) {
    if (s.owner != id_)
        throw std::runtime_error("sequence state: snapshot was taken from a different sequence state");
    for (uint64_t e = s.epoch; e < epoch_; ++e)
        if (overwrite_from_[e] < s.n_tokens)
            throw std::runtime_error("sequence state: cannot restore the snapshot at " + std::to_string(s.n_tokens) +
                                     " tokens: KV positions from " + std::to_string(overwrite_from_[e]) +
                                     " were overwritten after it was taken");
    for (size_t i = 0; i < conv_.size(); ++i) {
        std::memcpy(conv_[i].t().data, s.conv[i].t().data, conv_[i].t().nbytes());
        std::memcpy(rec_[i].t().data, s.recurrent[i].t().data, rec_[i].t().nbytes());
    }
    n_tokens_ = s.n_tokens;
}

SequenceState SequenceState::clone() const {
    SequenceState c;
    c.config_ = config_;
    c.id_ = next_state_id();
    c.capacity_ = capacity_;
    c.n_tokens_ = n_tokens_;
    c.high_water_ = n_tokens_;  // only the live prefix is copied
    c.slot_ = slot_;
    for (size_t i = 0; i < k_.size(); ++i) {
        const kern::Tensor& t = k_[i].t();
        c.k_.emplace_back(kern::DType::F32, std::initializer_list<int64_t>{t.shape[0], t.shape[1], t.shape[2]});
        c.v_.emplace_back(kern::DType::F32, std::initializer_list<int64_t>{t.shape[0], t.shape[1], t.shape[2]});
        copy_rows(k_[i], c.k_.back(), n_tokens_);
        copy_rows(v_[i], c.v_.back(), n_tokens_);
    }
    for (const auto& b : conv_) c.conv_.push_back(b.clone());
    for (const auto& b : rec_) c.rec_.push_back(b.clone());
    return c;
}

void SequenceState::reset() {
    for (auto& b : conv_) std::memset(b.t().data, 0, b.t().nbytes());
    for (auto& b : rec_) std::memset(b.t().data, 0, b.t().nbytes());
    n_tokens_ = 0;
}

void SequenceState::truncate(int64_t n) {
    if (n < 0 || n > n_tokens_)
        throw std::runtime_error("sequence state: cannot truncate to " + std::to_string(n) + " tokens (have " +
                                 std::to_string(n_tokens_) + ")");
    if (n == n_tokens_) return;
    if (!conv_.empty())
        throw std::runtime_error("sequence state: truncate needs a KV-only model; this model has " +
                                 std::to_string(conv_.size()) +
                                 " GDN layers whose state cannot be rewound (restore a snapshot instead)");
    n_tokens_ = n;
}

}  // namespace qnext
