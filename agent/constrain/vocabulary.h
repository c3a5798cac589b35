// Token vocabulary as the grammar engine sees it: the raw bytes of every ordinary (byte-level BPE)
// token, arranged in a byte trie, plus the added tokens (<tool_call>, </think>, <|im_end|>, ...) which
// the engine treats as indivisible symbols, never as the bytes of their text, and the stop tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qnext {
class Tokenizer;
}

namespace qnext::constrain {

// A set of byte strings (each with an id) laid out as a trie in DFS preorder, the layout
// llguidance uses: walking it in index order visits parents before children, and a rejected node
// is skipped together with its whole subtree in O(1) (`end`). Used for the vocabulary and for the
// per-state "suffix" sets of the mask cache.
class ByteTrie {
public:
    ByteTrie() = default;
    // entries: (bytes, id); empty byte strings are ignored. Duplicate byte strings are allowed.
    explicit ByteTrie(std::vector<std::pair<std::string, int32_t>> entries);

    size_t size() const { return byte_.size(); }    // number of nodes (one per distinct prefix)
    bool empty() const { return byte_.empty(); }
    uint8_t byte(size_t node) const { return byte_[node]; }
    uint16_t depth(size_t node) const { return depth_[node]; }   // 1 for children of the root
    uint32_t end(size_t node) const { return end_[node]; }       // first node after the subtree
    // ids of the entries whose bytes end exactly at `node`
    const int32_t* ids_begin(size_t node) const { return ids_.data() + ids_at_[node]; }
    const int32_t* ids_end(size_t node) const { return ids_.data() + ids_at_[node + 1]; }
    uint16_t max_depth() const { return max_depth_; }

private:
    std::vector<uint8_t> byte_;
    std::vector<uint16_t> depth_;
    std::vector<uint32_t> end_;
    std::vector<uint32_t> ids_at_;   // [nodes + 1] offsets into ids_
    std::vector<int32_t> ids_;
    uint16_t max_depth_ = 0;
};

class Vocabulary {
public:
    // token_bytes[i]: raw bytes of token i. `added_ids`: tokens that are symbols (not bytes);
    // `stop_ids`: tokens that end generation (a subset of added_ids in practice). Ids in
    // [0, size) with empty bytes that are not added are never allowed (holes in the id space).
    static std::shared_ptr<const Vocabulary> create(std::vector<std::string> token_bytes,
                                                    std::vector<int32_t> added_ids,
                                                    std::vector<int32_t> stop_ids);
    // From the project tokenizer: byte tokens, its added tokens and its eos ids.
    static std::shared_ptr<const Vocabulary> from_tokenizer(const qnext::Tokenizer& tok);

    int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
    size_t mask_words() const { return (bytes_.size() + 31) / 32; }
    const std::string& token_bytes(int32_t id) const { return bytes_.at(static_cast<size_t>(id)); }
    bool is_added(int32_t id) const { return id >= 0 && id < size() && added_[static_cast<size_t>(id)]; }
    bool is_stop(int32_t id) const;
    const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
    // added token with exactly this text (e.g. "<tool_call>"), if any
    std::optional<int32_t> added_id(std::string_view text) const;
    const ByteTrie& trie() const { return trie_; }
    // The ordinary token consisting of exactly this one byte (-1 if the vocabulary has none).
    int32_t byte_token(uint8_t b) const { return byte_token_[b]; }

private:
    Vocabulary() = default;
    std::vector<std::string> bytes_;
    std::vector<char> added_;
    std::vector<int32_t> added_ids_;
    std::vector<int32_t> stop_ids_;
    ByteTrie trie_;
    int32_t byte_token_[256];
};

using VocabularyPtr = std::shared_ptr<const Vocabulary>;

}  // namespace qnext::constrain
