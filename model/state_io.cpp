// SequenceState binary save/load (little-endian host layout; the header pins the dims).
//   state file:    "QNXTSTAT" u32 version, layout, i64 n_tokens, per attention layer K rows then V rows
//                  [n_tokens, nkv, D] f32, per GDN layer conv [K-1, C] then recurrent [Hv, Dk, Dv] f32
//   snapshot file: "QNXTSNAP" u32 version, layout, i64 n_tokens, per GDN layer conv then recurrent
// layout = i64 n_layers, one byte per layer (0 GDN, 1 attention), i64 nkv, D, K-1, C, Hv, Dk, Dv.
#include <cstring>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/state.h"

namespace qnext {

namespace {

constexpr char kStateMagic[8] = {'Q', 'N', 'X', 'T', 'S', 'T', 'A', 'T'};
constexpr char kSnapMagic[8] = {'Q', 'N', 'X', 'T', 'S', 'N', 'A', 'P'};
constexpr uint32_t kVersion = 1;

void put(std::ostream& o, const void* p, size_t n) {
    o.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    if (!o) throw std::runtime_error("sequence state: write failed");
}
template <class T> void put(std::ostream& o, T v) { put(o, &v, sizeof v); }

void get(std::istream& i, void* p, size_t n, const char* what) {
    i.read(static_cast<char*>(p), static_cast<std::streamsize>(n));
    if (static_cast<size_t>(i.gcount()) != n)
        throw std::runtime_error(std::string("sequence state file: truncated while reading ") + what);
}
template <class T> T get(std::istream& i, const char* what) {
    T v{};
    get(i, &v, sizeof v, what);
    return v;
}

std::vector<int64_t> layout_of(const Qwen3NextConfig& c) {
    std::vector<int64_t> l{c.num_hidden_layers};
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) l.push_back(c.is_full_attention(i) ? 1 : 0);
    for (int64_t v : {c.num_key_value_heads, c.head_dim, c.linear_conv_kernel_dim - 1, c.linear_conv_dim(),
                      c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim})
        l.push_back(v);
    return l;
}

void put_header(std::ostream& o, const char* magic, const Qwen3NextConfig& c) {
    put(o, magic, 8);
    put(o, kVersion);
    const auto l = layout_of(c);
    put(o, static_cast<int64_t>(l.size()));
    put(o, l.data(), l.size() * sizeof(int64_t));
}

void check_header(std::istream& i, const char* magic, const Qwen3NextConfig& c) {
    char m[8];
    get(i, m, 8, "the magic");
    if (std::memcmp(m, magic, 8) != 0)
        throw std::runtime_error(std::string("sequence state file: bad magic (expected ") + std::string(magic, 8) + ")");
    const auto version = get<uint32_t>(i, "the version");
    if (version != kVersion)
        throw std::runtime_error("sequence state file: version " + std::to_string(version) + " (this build reads " +
                                 std::to_string(kVersion) + ")");
    const auto expected = layout_of(c);
    const auto n = get<int64_t>(i, "the layout size");
    if (n != static_cast<int64_t>(expected.size()))
        throw std::runtime_error("sequence state file: saved for a model with a different layer layout");
    std::vector<int64_t> got(expected.size());
    get(i, got.data(), got.size() * sizeof(int64_t), "the layout");
    if (got != expected)
        throw std::runtime_error("sequence state file: saved for a model with different dimensions or layer types");
}

void put_rows(std::ostream& o, const kern::TensorBuffer& b, int64_t rows) {
    const kern::Tensor& t = b.t();
    put(o, t.data, t.nbytes() / static_cast<size_t>(t.shape[0]) * static_cast<size_t>(rows));
}
void get_rows(std::istream& i, const kern::TensorBuffer& b, int64_t rows, const char* what) {
    const kern::Tensor& t = b.t();
    get(i, t.data, t.nbytes() / static_cast<size_t>(t.shape[0]) * static_cast<size_t>(rows), what);
}

}  // namespace

void SequenceState::save(std::ostream& out) const {
    put_header(out, kStateMagic, *config_);
    put(out, n_tokens_);
    for (size_t i = 0; i < k_.size(); ++i) {
        put_rows(out, k_[i], n_tokens_);
        put_rows(out, v_[i], n_tokens_);
    }
    for (size_t i = 0; i < conv_.size(); ++i) {
        put_rows(out, conv_[i], conv_[i].t().shape[0]);
        put_rows(out, rec_[i], rec_[i].t().shape[0]);
    }
}

void SequenceState::load(std::istream& in) {
    check_header(in, kStateMagic, *config_);
    const auto n = get<int64_t>(in, "n_tokens");
    if (n < 0 || n > capacity_)
        throw std::runtime_error("sequence state file: holds " + std::to_string(n) + " tokens but this state has room for " +
                                 std::to_string(capacity_));
    for (size_t i = 0; i < k_.size(); ++i) {
        get_rows(in, k_[i], n, "KV rows");
        get_rows(in, v_[i], n, "KV rows");
    }
    for (size_t i = 0; i < conv_.size(); ++i) {
        get_rows(in, conv_[i], conv_[i].t().shape[0], "the conv state");
        get_rows(in, rec_[i], rec_[i].t().shape[0], "the recurrent state");
    }
    // New contents: earlier snapshots of this state no longer apply.
    id_ = next_state_id();
    n_tokens_ = n;
    high_water_ = n;
    epoch_ = 0;
    overwrite_from_.clear();
}

void SequenceState::save_snapshot(std::ostream& out, const Snapshot& s) {
    put(out, kSnapMagic, 8);
    put(out, kVersion);
    put(out, s.n_tokens);
    put(out, static_cast<int64_t>(s.conv.size()));
    for (size_t i = 0; i < s.conv.size(); ++i) {
        for (const kern::TensorBuffer* b : {&s.conv[i], &s.recurrent[i]}) {
            put(out, static_cast<int64_t>(b->t().numel()));
            put(out, b->t().data, b->t().nbytes());
        }
    }
}

SequenceState::Snapshot SequenceState::load_snapshot(std::istream& in) const {
    char m[8];
    get(in, m, 8, "the magic");
    if (std::memcmp(m, kSnapMagic, 8) != 0) throw std::runtime_error("snapshot file: bad magic (expected QNXTSNAP)");
    if (get<uint32_t>(in, "the version") != kVersion) throw std::runtime_error("snapshot file: unsupported version");
    Snapshot s;
    s.owner = id_;
    s.epoch = epoch_;
    s.n_tokens = get<int64_t>(in, "n_tokens");
    if (s.n_tokens < 0 || s.n_tokens > high_water_)
        throw std::runtime_error("snapshot file: snapshot at " + std::to_string(s.n_tokens) +
                                 " tokens is beyond the KV rows this state holds (" + std::to_string(high_water_) + ")");
    if (get<int64_t>(in, "the layer count") != static_cast<int64_t>(conv_.size()))
        throw std::runtime_error("snapshot file: saved for a model with a different number of GDN layers");
    for (size_t i = 0; i < conv_.size(); ++i) {
        for (const kern::TensorBuffer* mine : {&conv_[i], &rec_[i]}) {
            if (get<int64_t>(in, "a tensor size") != mine->t().numel())
                throw std::runtime_error("snapshot file: saved for a model with different GDN dimensions");
            kern::TensorBuffer b = mine->clone();
            get(in, b.t().data, b.t().nbytes(), "GDN state");
            (mine == &conv_[i] ? s.conv : s.recurrent).push_back(std::move(b));
        }
    }
    return s;
}

}  // namespace qnext
