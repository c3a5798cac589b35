#include "agent/constrain/engine.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace qnext::constrain {

namespace {
constexpr size_t kListThreshold = 2048;   // accepted sets up to this size are stored as id lists
constexpr size_t kMaxClosure = 200000;    // guard against runaway closures

std::string config_key(const std::vector<int32_t>& stacks, bool complete, bool popped) {
    std::string k(stacks.size() * sizeof(int32_t) + 1, '\0');
    std::memcpy(k.data(), stacks.data(), stacks.size() * sizeof(int32_t));
    k.back() = static_cast<char>((complete ? 1 : 0) | (popped ? 2 : 0));
    return k;
}

inline void set_bit(uint32_t* words, int32_t id) {
    words[static_cast<size_t>(id) >> 5] |= 1u << (static_cast<unsigned>(id) & 31u);
}
}  // namespace

Engine::Engine(CompiledRules rules, VocabularyPtr vocab) : g_(std::move(rules)), vocab_(std::move(vocab)) {
    width_ = g_.num_symbols();
    configs_.push_back(Config{});               // id 0 = dead
    config_ids_.emplace(config_key({}, false, false), 0);
    rows_.assign(width_, kDead);               // dead steps to dead
    rule_offset_.resize(g_.rules.size() + 1, 0);
    for (size_t r = 0; r < g_.rules.size(); ++r) rule_offset_[r + 1] = rule_offset_[r] + g_.rules[r].states.size();
    entries_.resize(rule_offset_.back());
    walk_.resize(static_cast<size_t>(vocab_->trie().max_depth()) + 2, kDead);
    initial_ = closure({intern_stack(g_.root, 0, kRoot)}, false, false);
}

int32_t Engine::intern_stack(int32_t rule, int32_t state, int32_t parent) {
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(rule)) << 40) ^
                   (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 20) ^
                   static_cast<uint64_t>(static_cast<uint32_t>(parent + 2)) * 0x9E3779B97F4A7C15ull;
    // The key is a hash: resolve collisions by probing with a perturbation.
    for (uint64_t probe = key;; probe = probe * 0x100000001B3ull + 1) {
        auto it = frame_ids_.find(probe);
        if (it == frame_ids_.end()) {
            int32_t id = static_cast<int32_t>(frames_.size());
            frames_.push_back({rule, state, parent});
            frame_ids_.emplace(probe, id);
            return id;
        }
        const Frame& f = frames_[static_cast<size_t>(it->second)];
        if (f.rule == rule && f.state == state && f.parent == parent) return it->second;
    }
}

int32_t Engine::intern_config(Config c) {
    if (c.stacks.empty() && !c.complete && !c.popped) return kDead;
    std::string key = config_key(c.stacks, c.complete, c.popped);
    auto it = config_ids_.find(key);
    if (it != config_ids_.end()) return it->second;
    int32_t id = static_cast<int32_t>(configs_.size());
    configs_.push_back(std::move(c));
    config_ids_.emplace(std::move(key), id);
    rows_.resize(rows_.size() + width_, -1);
    return id;
}

// Expands calls (push the callee's start) and completed rules (pop to the caller, which already sits
// in its return state) until only stacks whose top can consume a symbol remain.
int32_t Engine::closure(std::vector<int32_t> work, bool complete, bool popped) {
    std::vector<int32_t> seen = work;
    std::sort(seen.begin(), seen.end());
    Config out;
    out.complete = complete;
    out.popped = popped;
    auto add = [&](int32_t s) {
        auto it = std::lower_bound(seen.begin(), seen.end(), s);
        if (it != seen.end() && *it == s) return;
        seen.insert(it, s);
        work.push_back(s);
        if (seen.size() > kMaxClosure) throw std::runtime_error("constrain: grammar closure exploded");
    };
    for (size_t i = 0; i < work.size(); ++i) {
        const Frame f = frames_[static_cast<size_t>(work[i])];
        const DfaState& st = g_.rules[static_cast<size_t>(f.rule)].states[static_cast<size_t>(f.state)];
        if (!st.edges.empty()) out.stacks.push_back(work[i]);
        for (const Call& c : st.calls) add(intern_stack(c.rule, 0, intern_stack(f.rule, c.to, f.parent)));
        if (st.accept) {
            if (f.parent == kRoot)
                out.complete = true;
            else if (f.parent == kSentinel)
                out.popped = true;
            else
                add(f.parent);
        }
    }
    std::sort(out.stacks.begin(), out.stacks.end());
    return intern_config(std::move(out));
}

int32_t Engine::compute_step(int32_t config, int symbol) {
    std::vector<int32_t> seeds;
    const std::vector<int32_t> stacks = configs_[static_cast<size_t>(config)].stacks;
    for (int32_t s : stacks) {
        const Frame f = frames_[static_cast<size_t>(s)];
        const auto& edges = g_.rules[static_cast<size_t>(f.rule)].states[static_cast<size_t>(f.state)].edges;
        auto it = std::upper_bound(edges.begin(), edges.end(), symbol,
                                   [](int sym, const SymRange& e) { return sym < e.lo; });
        if (it == edges.begin()) continue;
        --it;
        if (symbol <= it->hi) seeds.push_back(intern_stack(f.rule, it->to, f.parent));
    }
    if (seeds.empty()) return kDead;
    return closure(std::move(seeds), false, false);
}

int32_t Engine::step(int32_t config, int symbol) {
    int32_t& cell = rows_[static_cast<size_t>(config) * width_ + static_cast<size_t>(symbol)];
    if (cell >= 0) return cell;
    int32_t next = compute_step(config, symbol);
    rows_[static_cast<size_t>(config) * width_ + static_cast<size_t>(symbol)] = next;  // rows_ may have moved
    return next;
}

int32_t Engine::advance_token(int32_t config, int32_t token) {
    if (token < 0 || token >= vocab_->size()) return kDead;
    if (vocab_->is_added(token)) {
        for (size_t k = 0; k < g_.token_terminals.size(); ++k)
            if (g_.token_terminals[k] == token) return step(config, kByteSymbols + static_cast<int>(k));
        return kDead;
    }
    const std::string& bytes = vocab_->token_bytes(token);
    if (bytes.empty()) return kDead;
    for (unsigned char b : bytes) {
        config = step(config, b);
        if (config == kDead) return kDead;
    }
    return config;
}

Engine::MaskEntry& Engine::entry(int32_t rule, int32_t state) {
    MaskEntry& e = entries_[rule_offset_[static_cast<size_t>(rule)] + static_cast<size_t>(state)];
    if (!e.computed) compute_entry(rule, state, e);
    return e;
}

// Walks the vocabulary trie from the frame alone (parent unknown = sentinel).
void Engine::compute_entry(int32_t rule, int32_t state, MaskEntry& e) {
    int32_t base = closure({intern_stack(rule, state, kSentinel)}, false, false);
    if (configs_[static_cast<size_t>(base)].popped) {   // an end right at the start is not a suffix
        Config c = configs_[static_cast<size_t>(base)];
        c.popped = false;
        base = intern_config(std::move(c));
    }
    const ByteTrie& t = vocab_->trie();
    const std::bitset<256>& follow = g_.follow[static_cast<size_t>(rule)];
    std::vector<int32_t> accepted;
    std::vector<std::pair<std::string, int32_t>> uncertain;
    walk_[0] = base;
    const size_t n = base == kDead ? 0 : t.size();
    for (size_t i = 0; i < n;) {
        const size_t d = t.depth(i);
        const int32_t c = step(walk_[d - 1], t.byte(i));
        if (c == kDead) {
            i = t.end(i);
            continue;
        }
        walk_[d] = c;
        accepted.insert(accepted.end(), t.ids_begin(i), t.ids_end(i));
        const Config& cfg = configs_[static_cast<size_t>(c)];
        if (cfg.popped) {
            for (size_t ch = i + 1; ch < t.end(i); ch = t.end(ch)) {
                if (!follow.test(t.byte(ch))) continue;
                for (size_t k = ch; k < t.end(ch); ++k)
                    for (const int32_t* id = t.ids_begin(k); id != t.ids_end(k); ++id)
                        uncertain.emplace_back(vocab_->token_bytes(*id).substr(d), *id);
            }
        }
        i = cfg.stacks.empty() ? t.end(i) : i + 1;
    }
    std::sort(accepted.begin(), accepted.end());
    if (!uncertain.empty()) {
        std::erase_if(uncertain, [&](const auto& u) {
            return std::binary_search(accepted.begin(), accepted.end(), u.second);
        });
        e.suffixes = ByteTrie(std::move(uncertain));
    }
    if (accepted.size() > kListThreshold) {
        e.bits.assign(vocab_->mask_words(), 0);
        for (int32_t id : accepted) set_bit(e.bits.data(), id);
    } else {
        e.ids = std::move(accepted);
    }
    e.computed = true;
}

int32_t Engine::parent_config(int32_t parent_stack) {
    auto it = parent_configs_.find(parent_stack);
    if (it != parent_configs_.end()) return it->second;
    int32_t c = closure({parent_stack}, false, false);
    parent_configs_.emplace(parent_stack, c);
    return c;
}

void Engine::fill_mask(int32_t config, uint32_t* words, size_t n_words) {
    if (n_words < vocab_->mask_words()) throw std::runtime_error("constrain: mask buffer too small");
    std::memset(words, 0, n_words * sizeof(uint32_t));
    const std::vector<int32_t> stacks = configs_[static_cast<size_t>(config)].stacks;
    const bool complete = configs_[static_cast<size_t>(config)].complete;
    for (int32_t s : stacks) {
        const Frame f = frames_[static_cast<size_t>(s)];
        const MaskEntry& e = entry(f.rule, f.state);
        if (!e.bits.empty()) {
            const uint32_t* b = e.bits.data();
            for (size_t w = 0, nw = e.bits.size(); w < nw; ++w) words[w] |= b[w];
        }
        for (int32_t id : e.ids) set_bit(words, id);
        if (e.suffixes.empty() || f.parent < 0) continue;
        const ByteTrie& t = e.suffixes;
        walk_[0] = parent_config(f.parent);
        for (size_t i = 0, n = t.size(); i < n;) {
            const size_t d = t.depth(i);
            const int32_t c = step(walk_[d - 1], t.byte(i));
            if (c == kDead) {
                i = t.end(i);
                continue;
            }
            walk_[d] = c;
            for (const int32_t* id = t.ids_begin(i); id != t.ids_end(i); ++id) set_bit(words, *id);
            ++i;
        }
    }
    if (complete)
        for (int32_t id : vocab_->stop_ids()) set_bit(words, id);
    for (size_t k = 0; k < g_.token_terminals.size(); ++k)
        if (step(config, kByteSymbols + static_cast<int>(k)) != kDead) set_bit(words, g_.token_terminals[k]);
}

std::vector<int> Engine::shortest_completion(int32_t config) {
    std::unordered_map<int32_t, std::pair<int32_t, int>> from;   // config -> (previous config, symbol)
    std::vector<int32_t> queue{config};
    from.emplace(config, std::make_pair(-1, -1));
    for (size_t i = 0; i < queue.size() && queue.size() < 200000; ++i) {
        const int32_t c = queue[i];
        if (can_complete(c)) {
            std::vector<int> path;
            for (int32_t x = c; from[x].first >= 0; x = from[x].first) path.push_back(from[x].second);
            return {path.rbegin(), path.rend()};
        }
        for (size_t sym = 0; sym < width_; ++sym) {
            const int32_t n = step(c, static_cast<int>(sym));
            if (n != kDead && from.emplace(n, std::make_pair(c, static_cast<int>(sym))).second) queue.push_back(n);
        }
    }
    return {};
}

void Engine::precompute_all() {
    for (size_t r = 0; r < g_.rules.size(); ++r)
        for (size_t s = 0; s < g_.rules[r].states.size(); ++s)
            if (!g_.rules[r].states[s].edges.empty()) entry(static_cast<int32_t>(r), static_cast<int32_t>(s));
}

size_t Engine::cache_bytes() const {
    size_t n = rows_.size() * sizeof(int32_t);
    for (const auto& e : entries_) n += e.bits.size() * 4 + e.ids.size() * 4 + e.suffixes.size() * 12;
    return n;
}

}  // namespace qnext::constrain
