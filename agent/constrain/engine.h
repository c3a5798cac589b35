// Runtime of the grammar engine. DESIGN (why it is fast):
//
// * The grammar is a pushdown automaton over bytes (rules.h). A parser position is a *configuration*:
//   a set of stacks (ambiguity, e.g. anyOf branches sharing a prefix, keeps several stacks alive, as in
//   an Earley/GLR parser). Stacks are hash-consed persistent lists of frames (rule, state, parent), so
//   a stack is one int and sharing/rollback is free; configurations are hash-consed too.
// * Transitions between configurations are memoised in a lazily built table (config x symbol ->
//   config), i.e. the PDA is determinised on the fly. After warm-up one byte step is one array load.
// * Token masks: walking the whole 151k-token trie per step would cost ~1 ms. Like XGrammar's adaptive
//   token mask cache we split tokens per *frame* (top rule+state, independent of what is below it):
//   tokens fully consumed inside the frame's rule (and rules it calls) are "accepted" and cached once
//   per frame; tokens that make the frame's rule end and then continue with more bytes are
//   "uncertain": their remaining bytes (suffixes) are stored in a small suffix trie, pruned at
//   compile time with the FOLLOW set of the rule, and checked at run time against the real parent
//   stack. A mask is then: OR of cached bitsets + a walk over a few dozen suffix-trie nodes.
// * The frame caches are filled eagerly when the grammar is compiled (so there is no first-visit
//   spike at generation time) and the string/number rules shared between properties are computed once.
// * Length-bounded strings (maxLength 200 = 200 positions, each a near-full trie walk of ~5 ms) are
//   not walked per position: one walk of the plain string body, shared by all grammars of a vocabulary,
//   records per token how many characters it spends (or after how many it closes the string, and the
//   bytes after the quote); each position's entry is then a prefix of that table (compute_counted_entries).
//
// Not thread-safe on its own: Grammar wraps it with a mutex.
#pragma once
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/constrain/rules.h"
#include "agent/constrain/vocabulary.h"

namespace qnext::constrain {

class Engine {
public:
    static constexpr int32_t kRoot = -1;      // parent of the outermost frame
    static constexpr int32_t kSentinel = -2;  // parent of the base frame in a per-frame (local) walk
    static constexpr int32_t kDead = 0;       // the empty configuration

    struct Options {
        bool derive_counted_strings = true;   // off: walk the trie per position (tests compare both)
        bool share_leaf_rules = true;         // off: no vocabulary-wide leaf-rule cache
    };
    Engine(CompiledRules rules, VocabularyPtr vocab) : Engine(std::move(rules), std::move(vocab), Options{}) {}
    Engine(CompiledRules rules, VocabularyPtr vocab, Options opts);

    // Configuration at the start of the grammar.
    int32_t initial() const { return initial_; }
    // One symbol (byte or 256+k) from a configuration; kDead when not allowed.
    int32_t step(int32_t config, int symbol);
    // Advances by a whole token; kDead when not allowed. Stop tokens are not handled here.
    int32_t advance_token(int32_t config, int32_t token);
    bool can_complete(int32_t config) const { return configs_[static_cast<size_t>(config)].complete; }
    bool has_continuation(int32_t config) const { return !configs_[static_cast<size_t>(config)].stacks.empty(); }
    // Writes the allowed-token bitset (n_words >= vocab mask words; extra words are zeroed).
    void fill_mask(int32_t config, uint32_t* words, size_t n_words);
    // A shortest symbol sequence from `config` to a configuration where the grammar may end
    // (breadth-first over the determinised automaton; empty if already complete or none found).
    std::vector<int> shortest_completion(int32_t config);
    // What a grammar compile computes: every state of the leaf rules (strings, formats, patterns, numbers:
    // the expensive walks, shared across grammars) and every broad state; the narrow states of structural
    // rules (object keys, punctuation; a 20-tool grammar has ~1000, a call visits a few dozen) are computed
    // on first visit, each a walk of tens of microseconds.
    void precompute();
    // Builds the vocabulary-wide tables now (the string table; see Grammar::prepare_vocabulary).
    static void prepare_vocabulary(const VocabularyPtr& vocab) { string_table(vocab); }

    const CompiledRules& rules() const { return g_; }
    const Vocabulary& vocab() const { return *vocab_; }
    size_t num_configs() const { return configs_.size(); }
    size_t cache_bytes() const;

private:
    struct Frame {
        int32_t rule, state, parent;
    };
    struct Config {
        std::vector<int32_t> stacks;  // sorted stack ids whose top state has outgoing symbols
        bool complete = false;        // the outermost rule may end here (stop tokens allowed)
        bool popped = false;          // the base frame of a local walk ended here
    };
    struct MaskEntry {
        // accepted tokens as a bitset, or as a list when there are few of them (shared between
        // entries with equal sets, e.g. the positions of a long bounded string)
        std::shared_ptr<const std::vector<uint32_t>> bits;
        std::vector<int32_t> ids;
        std::shared_ptr<const ByteTrie> suffixes;   // uncertain tokens: bytes left after the frame's rule ended
        bool computed = false;
    };

    int32_t intern_stack(int32_t rule, int32_t state, int32_t parent);
    int32_t intern_config(Config c);
    int32_t closure(std::vector<int32_t> seeds, bool complete, bool popped);
    int32_t compute_step(int32_t config, int symbol);
    MaskEntry& entry(int32_t rule, int32_t state);
    void compute_entry(int32_t rule, int32_t state, MaskEntry& e);
    int32_t parent_config(int32_t parent_stack);
    void compute_counted_entries(int32_t rule);
    std::string leaf_key(int32_t rule) const;
    void compute_rule_entries(int32_t rule);
    struct StringTable;
    struct VocabCache;
    static std::shared_ptr<VocabCache> vocab_cache(const VocabularyPtr& vocab);
    static std::shared_ptr<const StringTable> string_table(const VocabularyPtr& vocab);
    struct StringTableState;
    void walk_string_state(int32_t rule, int32_t from, int32_t body, StringTableState& out);
    template <class Visit>
    void walk_trie(const ByteTrie& t, int32_t start, const std::bitset<256>* first, Visit&& visit);

    CompiledRules g_;
    VocabularyPtr vocab_;
    Options opts_;
    size_t width_;                                // symbols per row
    std::vector<Frame> frames_;
    std::unordered_map<uint64_t, int32_t> frame_ids_;
    std::vector<Config> configs_;
    std::unordered_map<std::string, int32_t> config_ids_;
    std::vector<int32_t> rows_;                   // [configs x width], -1 = not computed yet
    std::vector<size_t> rule_offset_;             // first frame-cache index of each rule
    std::vector<MaskEntry> entries_;
    std::vector<char> leaf_;                      // per rule: no calls (entries shareable across grammars)
    std::vector<char> rule_done_;                 // per leaf rule: all entries computed (or taken from the cache)
    std::unordered_map<int32_t, int32_t> parent_configs_;
    std::vector<int32_t> walk_;                   // per-depth configurations during trie walks
    std::vector<uint32_t> scratch_bits_;          // accepted-token bitset of the entry being computed
    int32_t initial_ = 0;
};

}  // namespace qnext::constrain
