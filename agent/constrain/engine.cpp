#include "agent/constrain/engine.h"

#include "agent/constrain/json_schema_internal.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <mutex>
#include <set>
#include <map>
#include <stdexcept>

namespace qnext::constrain {

namespace {
constexpr size_t kListThreshold = 2048;   // accepted sets up to this size are stored as id lists
constexpr size_t kMaxClosure = 200000;    // guard against runaway closures
// precompute(): states of non-leaf rules taking at most this many distinct first bytes (key literals,
// punctuation) are left to their first visit, where the walk costs tens of microseconds.
constexpr size_t kLazyMaxFirstBytes = 8;

std::string config_key(const std::vector<int32_t>& stacks, bool complete, bool popped) {
    std::string k(stacks.size() * sizeof(int32_t) + 1, '\0');
    if (!stacks.empty()) std::memcpy(k.data(), stacks.data(), stacks.size() * sizeof(int32_t));
    k.back() = static_cast<char>((complete ? 1 : 0) | (popped ? 2 : 0));
    return k;
}

inline void set_bit(uint32_t* words, int32_t id) {
    words[static_cast<size_t>(id) >> 5] |= 1u << (static_cast<unsigned>(id) & 31u);
}
inline bool test_bit(const uint32_t* words, int32_t id) {
    return (words[static_cast<size_t>(id) >> 5] >> (static_cast<unsigned>(id) & 31u)) & 1u;
}
}  // namespace

Engine::Engine(CompiledRules rules, VocabularyPtr vocab, Options opts)
    : g_(std::move(rules)), vocab_(std::move(vocab)), opts_(opts) {
    width_ = g_.num_symbols();
    configs_.push_back(Config{});               // id 0 = dead
    config_ids_.emplace(config_key({}, false, false), 0);
    rows_.assign(width_, kDead);               // dead steps to dead
    rule_offset_.resize(g_.rules.size() + 1, 0);
    for (size_t r = 0; r < g_.rules.size(); ++r) rule_offset_[r + 1] = rule_offset_[r] + g_.rules[r].states.size();
    entries_.resize(rule_offset_.back());
    rule_done_.assign(g_.rules.size(), 0);
    leaf_.assign(g_.rules.size(), 1);
    for (size_t r = 0; r < g_.rules.size(); ++r)
        for (const DfaState& st : g_.rules[r].states) leaf_[r] = leaf_[r] && st.calls.empty();
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
    // (intern_stack below grows frames_, never configs_, so this reference stays valid)
    const std::vector<int32_t>& stacks = configs_[static_cast<size_t>(config)].stacks;
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

// Per-vocabulary data shared by every grammar of that vocabulary (and guarded by its own mutex):
// * the plain-string token table behind counted strings (built on first use);
// * the mask entries of leaf rules (no calls: strings, formats, patterns, numbers, enums), which depend only
//   on their automaton, the FOLLOW set and the vocabulary (a tool set compiled again for another tool_choice,
//   or a "format": "email" field shared with another tool).
struct Engine::VocabCache {
    std::mutex mu;
    std::shared_ptr<const StringTable> strings;
    std::unordered_map<std::string, std::shared_ptr<const std::vector<MaskEntry>>> leaf_rules;
};

namespace {
constexpr size_t kLeafCacheRules = 1024;   // leaf_rules is cleared when it grows past this
}  // namespace

std::shared_ptr<Engine::VocabCache> Engine::vocab_cache(const VocabularyPtr& vocab) {
    static std::mutex mu;
    static std::vector<std::pair<std::weak_ptr<const Vocabulary>, std::shared_ptr<VocabCache>>> caches;
    std::lock_guard<std::mutex> lock(mu);
    std::erase_if(caches, [](const auto& c) { return c.first.expired(); });
    for (const auto& [v, c] : caches)
        if (!v.owner_before(vocab) && !vocab.owner_before(v)) return c;
    caches.emplace_back(vocab, std::make_shared<VocabCache>());
    return caches.back().second;
}

// Key of a leaf rule: its states (edges, accept) and FOLLOW set; empty if the rule calls others.
std::string Engine::leaf_key(int32_t rule) const {
    const DfaRule& r = g_.rules[static_cast<size_t>(rule)];
    std::string key;
    auto put = [&](int32_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
    for (const DfaState& st : r.states) {
        if (!st.calls.empty()) return {};
        put(st.accept ? -2 : -3);
        for (const SymRange& e : st.edges) {
            put(e.lo);
            put(e.hi);
            put(e.to);
        }
    }
    put(r.counted ? r.counted->min : -4);
    put(r.counted ? r.counted->max : -4);
    key += g_.follow[static_cast<size_t>(rule)].to_string();
    return key;
}

void Engine::compute_rule_entries(int32_t rule) {
    rule_done_[static_cast<size_t>(rule)] = 1;
    const std::string key = leaf_key(rule);
    const size_t at = rule_offset_[static_cast<size_t>(rule)], n = g_.rules[static_cast<size_t>(rule)].states.size();
    std::shared_ptr<VocabCache> cache = key.empty() || !opts_.share_leaf_rules ? nullptr : vocab_cache(vocab_);
    if (cache) {
        std::shared_ptr<const std::vector<MaskEntry>> hit;
        {
            std::lock_guard<std::mutex> lock(cache->mu);
            if (auto it = cache->leaf_rules.find(key); it != cache->leaf_rules.end()) hit = it->second;
        }
        if (hit) {
            std::copy(hit->begin(), hit->end(), entries_.begin() + static_cast<ptrdiff_t>(at));
            return;
        }
    }
    if (g_.rules[static_cast<size_t>(rule)].counted && opts_.derive_counted_strings) compute_counted_entries(rule);
    for (size_t s = 0; s < n; ++s) {
        MaskEntry& e = entries_[at + s];
        if (!e.computed && !g_.rules[static_cast<size_t>(rule)].states[s].edges.empty())
            compute_entry(rule, static_cast<int32_t>(s), e);
    }
    if (cache) {
        auto saved = std::make_shared<const std::vector<MaskEntry>>(entries_.begin() + static_cast<ptrdiff_t>(at),
                                                                    entries_.begin() + static_cast<ptrdiff_t>(at + n));
        std::lock_guard<std::mutex> lock(cache->mu);
        if (cache->leaf_rules.size() >= kLeafCacheRules) cache->leaf_rules.clear();
        cache->leaf_rules.emplace(key, std::move(saved));
    }
}

Engine::MaskEntry& Engine::entry(int32_t rule, int32_t state) {
    MaskEntry& e = entries_[rule_offset_[static_cast<size_t>(rule)] + static_cast<size_t>(state)];
    if (!e.computed && leaf_[static_cast<size_t>(rule)] && !rule_done_[static_cast<size_t>(rule)])
        compute_rule_entries(rule);   // all states of a leaf rule at once: derived and/or shared
    if (!e.computed) compute_entry(rule, state, e);
    return e;
}

// Tokens as seen from one state S of a plain JSON string ('"' body* '"'): `full` tokens stay inside the
// string; `chars` counts the characters they complete (returns to the body state; a character already
// started in S is completed by the first one) plus one for a final partial character (UTF-8 lead,
// escape). `close` tokens end the string after `chars` completed characters; `suffix` = their bytes after
// the quote. One table per state of the body's character automaton; shared by all grammars of a vocabulary.
struct Engine::StringTableState {
    struct Item {
        int32_t chars, id;
        std::string suffix;
    };
    std::vector<Item> full, close;   // both sorted by chars
};
struct Engine::StringTable {
    using Item = StringTableState::Item;
    using PerState = StringTableState;
    DfaRule rule;                        // the plain string rule (state 0: before the opening quote)
    int32_t body = -1;
    std::vector<PerState> at;            // per state of `rule`
};

std::shared_ptr<const Engine::StringTable> Engine::string_table(const VocabularyPtr& vocab) {
    const std::shared_ptr<VocabCache> cache = vocab_cache(vocab);
    std::lock_guard<std::mutex> lock(cache->mu);
    if (cache->strings) return cache->strings;
    // A one-rule grammar: a string in exactly the syntax of the schema compiler's strings.
    RuleSet rs;
    const int32_t rule = rs.declare("string");
    detail::emit_plain_string(rs.nfa(rule), rs.nfa(rule).start, rs.nfa(rule).final_state);
    Engine tmp(compile_rules(rs, rule), vocab);
    auto table = std::make_shared<StringTable>();
    table->rule = tmp.g_.rules[0];
    const auto& start_edges = table->rule.states[0].edges;
    if (start_edges.size() != 1) throw std::logic_error("constrain: unexpected string rule layout");
    table->body = start_edges[0].to;
    table->at.resize(table->rule.states.size());
    for (size_t st = 0; st < table->rule.states.size(); ++st)
        if (!table->rule.states[st].edges.empty())
            tmp.walk_string_state(0, static_cast<int32_t>(st), table->body, table->at[st]);
    cache->strings = table;
    return table;
}

// Depth-first walk of a byte trie from configuration `start`, stepping the automaton one byte per level
// (walk_[d] = configuration after d bytes). Subtrees the automaton rejects are skipped, and so are the root's
// children whose byte is not in `first` (when given). visit(node, depth, config) runs on every accepted node
// and returns whether to descend into its children.
template <class Visit>
void Engine::walk_trie(const ByteTrie& t, int32_t start, const std::bitset<256>* first, Visit&& visit) {
    walk_[0] = start;
    for (size_t i = 0, n = t.size(); i < n;) {
        const size_t d = t.depth(i);
        const bool skip = d == 1 && first && !first->test(t.byte(i));
        const int32_t c = skip ? kDead : step(walk_[d - 1], t.byte(i));
        if (c == kDead) {
            i = t.end(i);
            continue;
        }
        walk_[d] = c;
        i = visit(i, d, c) ? i + 1 : t.end(i);
    }
}

void Engine::walk_string_state(int32_t rule, int32_t from, int32_t body, StringTableState& out) {
    const int32_t start = closure({intern_stack(rule, from, kSentinel)}, false, false);
    const int32_t base = closure({intern_stack(rule, body, kSentinel)}, false, false);
    const ByteTrie& t = vocab_->trie();
    std::vector<int32_t> chars(walk_.size(), 0);   // completed characters after each depth
    walk_trie(t, start, nullptr, [&](size_t i, size_t d, int32_t c) {
        if (configs_[static_cast<size_t>(c)].popped) {   // the closing quote: this node and its subtree
            for (size_t k = i; k < t.end(i); ++k)
                for (const int32_t* id = t.ids_begin(k); id != t.ids_end(k); ++id)
                    out.close.push_back({chars[d - 1], *id, vocab_->token_bytes(*id).substr(d)});
            return false;
        }
        chars[d] = chars[d - 1] + (c == base && !(d == 1 && from == 0) ? 1 : 0);   // the opening quote is no character
        for (const int32_t* id = t.ids_begin(i); id != t.ids_end(i); ++id)
            out.full.push_back({chars[d] + (c == base ? 0 : 1), *id, {}});
        return true;
    });
    auto by_chars = [](std::vector<StringTable::Item>& items) {   // counting sort: chars <= max token length
        std::vector<std::vector<StringTable::Item>> buckets;
        for (auto& it : items) {
            if (static_cast<size_t>(it.chars) >= buckets.size()) buckets.resize(static_cast<size_t>(it.chars) + 1);
            buckets[static_cast<size_t>(it.chars)].push_back(std::move(it));
        }
        items.clear();
        for (auto& b : buckets) std::move(b.begin(), b.end(), std::back_inserter(items));
    };
    by_chars(out.full);
    by_chars(out.close);
}

// Entries of a counted-string rule without walking the trie per state. Every state after the opening
// quote is paired with (k, S): k characters complete, S the state of the plain string's character
// automaton (body = between characters). The pairing follows both automata edge by edge (they are built
// from the same character NFA); a state that cannot be paired consistently keeps the ordinary walk.
// With r = max - k characters still allowed and m = min - k still required, the entry accepts the full
// tokens of S needing <= r slots and the closing tokens with m..r characters and nothing after the quote;
// closing tokens with bytes after the quote are uncertain (checked against the parent at run time).
void Engine::compute_counted_entries(int32_t rule) {
    const DfaRule& dr = g_.rules[static_cast<size_t>(rule)];
    const CountedString cs = *dr.counted;
    const std::shared_ptr<const StringTable> table = string_table(vocab_);
    const DfaRule& plain = table->rule;
    auto next = [](const DfaRule& r, int32_t s, int sym) -> int32_t {
        for (const SymRange& e : r.states[static_cast<size_t>(s)].edges)
            if (sym >= e.lo && sym <= e.hi) return e.to;
        return -1;
    };
    // positions: the state after '"' and k times 'a'
    std::vector<int32_t> pos;
    for (int32_t s = next(dr, 0, '"'); s >= 0 && std::find(pos.begin(), pos.end(), s) == pos.end(); s = next(dr, s, 'a'))
        pos.push_back(s);
    if (pos.empty()) return;
    struct Pair {
        int32_t k = -1, plain = -1;
        bool bad = false;
    };
    std::vector<Pair> pair(dr.states.size());
    std::vector<int32_t> queue;
    auto assign = [&](int32_t st, int32_t k, int32_t ps) {
        Pair& p = pair[static_cast<size_t>(st)];
        if (p.k < 0 && !p.bad) {
            p.k = k;
            p.plain = ps;
            queue.push_back(st);
        } else if (p.k != k || p.plain != ps) {
            p.bad = true;
        }
    };
    for (size_t k = 0; k < pos.size(); ++k) assign(pos[k], static_cast<int32_t>(k), table->body);
    pair[0] = Pair{0, 0, false};   // before the opening quote: plain state 0, no character yet
    for (size_t q = 0; q < queue.size(); ++q) {
        const int32_t st = queue[q];
        const Pair p = pair[static_cast<size_t>(st)];
        for (const SymRange& e : dr.states[static_cast<size_t>(st)].edges) {
            const int32_t pn = next(plain, p.plain, e.lo);
            if (pn < 0) {
                pair[static_cast<size_t>(st)].bad = true;
                continue;
            }
            if (plain.states[static_cast<size_t>(pn)].edges.empty()) continue;   // the closing quote
            if (pn == table->body) {
                const size_t k1 = std::min(static_cast<size_t>(p.k) + 1, pos.size() - 1);
                if (e.to != pos[k1]) pair[static_cast<size_t>(st)].bad = true;
                continue;
            }
            assign(e.to, p.k, pn);
        }
    }
    const int32_t unbounded = std::numeric_limits<int32_t>::max();
    const std::bitset<256>& follow = g_.follow[static_cast<size_t>(rule)];
    // Per plain state, the paired states by increasing r (accepted full tokens only grow).
    std::vector<std::vector<int32_t>> groups(plain.states.size());
    for (size_t st = 0; st < pair.size(); ++st)
        if (pair[st].k >= 0 && !pair[st].bad) groups[static_cast<size_t>(pair[st].plain)].push_back(static_cast<int32_t>(st));
    std::vector<uint32_t> running;
    for (size_t ps = 0; ps < groups.size(); ++ps) {
        if (groups[ps].empty()) continue;
        const StringTable::PerState& tab = table->at[ps];
        std::sort(groups[ps].begin(), groups[ps].end(),
                  [&](int32_t a, int32_t b) { return pair[static_cast<size_t>(a)].k > pair[static_cast<size_t>(b)].k; });
        running.assign(vocab_->mask_words(), 0);
        std::vector<int32_t> running_ids;   // the same set as a list while it is small
        size_t full_at = 0, n_running = 0;
        std::map<std::tuple<size_t, ptrdiff_t, ptrdiff_t>, int32_t> shared;   // equal sets -> first state
        for (int32_t st : groups[ps]) {
            const int32_t k = pair[static_cast<size_t>(st)].k;
            const int32_t r = cs.max < 0 ? unbounded : cs.max - k;
            const int32_t m = std::max(0, cs.min - k);
            while (full_at < tab.full.size() && tab.full[full_at].chars <= r) {
                set_bit(running.data(), tab.full[full_at].id);
                if (n_running < kListThreshold) running_ids.push_back(tab.full[full_at].id);
                ++full_at;
                ++n_running;
            }
            MaskEntry& e = entries_[rule_offset_[static_cast<size_t>(rule)] + static_cast<size_t>(st)];
            if (e.computed) continue;
            auto lo = std::lower_bound(tab.close.begin(), tab.close.end(), m,
                                       [](const StringTable::Item& it, int32_t v) { return it.chars < v; });
            auto hi = std::upper_bound(lo, tab.close.end(), r,
                                       [](int32_t v, const StringTable::Item& it) { return v < it.chars; });
            const auto key = std::make_tuple(full_at, lo - tab.close.begin(), hi - tab.close.begin());
            if (auto it = shared.find(key); it != shared.end()) {
                const MaskEntry& same = entries_[rule_offset_[static_cast<size_t>(rule)] + static_cast<size_t>(it->second)];
                e.bits = same.bits;
                e.ids = same.ids;
                e.suffixes = same.suffixes;
                e.computed = true;
                continue;
            }
            shared.emplace(key, st);
            std::vector<std::pair<std::string, int32_t>> uncertain;
            std::vector<int32_t> closing;
            for (auto it = lo; it != hi; ++it) {
                if (it->suffix.empty())
                    closing.push_back(it->id);
                else if (follow.test(static_cast<unsigned char>(it->suffix[0])))
                    uncertain.emplace_back(it->suffix, it->id);
            }
            const size_t n_accepted = n_running + closing.size();
            if (n_accepted > kListThreshold) {
                auto bits = std::make_shared<std::vector<uint32_t>>(running);
                for (int32_t id : closing) set_bit(bits->data(), id);
                e.bits = std::move(bits);
            } else {
                e.ids = running_ids;
                e.ids.insert(e.ids.end(), closing.begin(), closing.end());
                std::sort(e.ids.begin(), e.ids.end());
                e.ids.erase(std::unique(e.ids.begin(), e.ids.end()), e.ids.end());
            }
            if (!uncertain.empty()) e.suffixes = std::make_shared<const ByteTrie>(std::move(uncertain));
            e.computed = true;
        }
    }
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
    // Accepted ids are collected straight into a bitset (no sort: a full walk accepts ~all 151k ids).
    std::vector<uint32_t>& bits = scratch_bits_;
    bits.assign(vocab_->mask_words(), 0);
    size_t n_accepted = 0;
    std::vector<std::pair<std::string, int32_t>> uncertain;
    // First bytes the frame can take: most states are narrow (a literal, a digit), so the root's ~256
    // children are filtered here without computing a step for each.
    std::bitset<256> first;
    for (int32_t sid : configs_[static_cast<size_t>(base)].stacks) {
        const Frame f = frames_[static_cast<size_t>(sid)];
        for (const SymRange& r : g_.rules[static_cast<size_t>(f.rule)].states[static_cast<size_t>(f.state)].edges)
            for (int b = r.lo; b <= std::min<int>(r.hi, 255); ++b) first.set(static_cast<size_t>(b));
    }
    if (base != kDead)
        walk_trie(t, base, &first, [&](size_t i, size_t d, int32_t c) {
            for (const int32_t* id = t.ids_begin(i); id != t.ids_end(i); ++id, ++n_accepted) set_bit(bits.data(), *id);
            const Config& cfg = configs_[static_cast<size_t>(c)];
            if (cfg.popped) {   // the rule may end here: what follows is decided by the parent (fill_mask)
                for (size_t ch = i + 1; ch < t.end(i); ch = t.end(ch)) {
                    if (!follow.test(t.byte(ch))) continue;
                    for (size_t k = ch; k < t.end(ch); ++k)
                        for (const int32_t* id = t.ids_begin(k); id != t.ids_end(k); ++id)
                            uncertain.emplace_back(vocab_->token_bytes(*id).substr(d), *id);
                }
            }
            return !cfg.stacks.empty();
        });
    if (!uncertain.empty()) {
        std::erase_if(uncertain, [&](const auto& u) { return test_bit(bits.data(), u.second); });
        e.suffixes = std::make_shared<const ByteTrie>(std::move(uncertain));
    }
    if (n_accepted > kListThreshold) {
        e.bits = std::make_shared<const std::vector<uint32_t>>(bits);
    } else {
        e.ids.reserve(n_accepted);
        for (size_t w = 0; w < bits.size(); ++w)
            for (uint32_t x = bits[w]; x; x &= x - 1)
                e.ids.push_back(static_cast<int32_t>(w * 32 + static_cast<size_t>(__builtin_ctz(x))));
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
        if (e.bits) {
            const uint32_t* b = e.bits->data();
            for (size_t w = 0, nw = e.bits->size(); w < nw; ++w) words[w] |= b[w];
        }
        for (int32_t id : e.ids) set_bit(words, id);
        if (!e.suffixes || f.parent < 0) continue;
        const ByteTrie& t = *e.suffixes;
        walk_trie(t, parent_config(f.parent), nullptr, [&](size_t i, size_t, int32_t) {
            for (const int32_t* id = t.ids_begin(i); id != t.ids_end(i); ++id) set_bit(words, *id);
            return true;
        });
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

void Engine::precompute() {
    for (size_t r = 0; r < g_.rules.size(); ++r) {
        const auto& states = g_.rules[r].states;
        for (size_t s = 0; s < states.size(); ++s) {
            size_t first_bytes = 0;
            for (const SymRange& e : states[s].edges)
                if (e.lo < kByteSymbols) first_bytes += std::min<size_t>(e.hi, kByteSymbols - 1) - e.lo + 1u;
            if (first_bytes > kLazyMaxFirstBytes || (leaf_[r] && !states[s].edges.empty()))
                entry(static_cast<int32_t>(r), static_cast<int32_t>(s));
        }
    }
}

size_t Engine::cache_bytes() const {
    size_t n = rows_.size() * sizeof(int32_t);
    std::set<const void*> seen;   // shared sets count once
    for (const auto& e : entries_) {
        n += e.ids.size() * 4;
        if (e.bits && seen.insert(e.bits.get()).second) n += e.bits->size() * 4;
        if (e.suffixes && seen.insert(e.suffixes.get()).second) n += e.suffixes->size() * 12;
    }
    return n;
}

}  // namespace qnext::constrain
