// Byte-level BPE: the GPT-2 byte<->unicode alphabet, the merge table and word merging.
#pragma once
#include <array>
#include <functional>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qnext::text {

// GPT-2 `bytes_to_unicode`: byte b is written as this code point in vocab/merge strings.
const std::array<char32_t, 256>& byte_to_unicode();
// Inverse mapping of a whole byte-level string to raw bytes. Returns false (out untouched beyond
// what was appended) if some character is not in the 256-character alphabet.
bool byte_level_decode(std::string_view s, std::string& out);

// (left id, right id) -> (rank, merged id): open addressing, linear probing, power-of-two size.
class MergeTable {
public:
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = 0;
        int32_t merged = 0;
    };
    void reserve(size_t n);
    // Returns false if the pair is already present (the first, lowest-rank merge wins, as in HF).
    bool insert(int32_t left, int32_t right, int32_t rank, int32_t merged);
    const Entry* find(int32_t left, int32_t right) const {
        const uint64_t key = pack(left, right);
        for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            const Entry& e = slots_[i];
            if (e.key == key) return &e;
            if (e.key == kEmpty) return nullptr;
        }
    }
    size_t size() const { return size_; }

private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint64_t pack(int32_t a, int32_t b) {
        return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
    }
    static size_t hash(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        return static_cast<size_t>(k);
    }
    std::vector<Entry> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

// String -> id map with open addressing (node-based std::unordered_map costs ~150 ms of cache
// misses when building the 151k-entry Qwen tables). Keys are views; their storage must outlive it.
class StringIdMap {
public:
    void reserve(size_t n);
    void insert(std::string_view key, int32_t id);   // first insertion of a key wins
    int32_t find(std::string_view key) const {        // -1 when absent
        if (slots_.empty()) return -1;
        const uint64_t h = hash(key);
        const auto tag = static_cast<uint32_t>(h >> 32) | 1u;   // 0 marks an empty slot
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.tag == 0) return -1;
            if (s.tag == tag && entries_[s.entry].first == key) return entries_[s.entry].second;
        }
    }
    size_t size() const { return entries_.size(); }

private:
    struct Slot {
        uint32_t tag = 0;
        uint32_t entry = 0;
    };
    static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s) * 0x9E3779B97F4A7C15ULL; }
    void rehash(size_t slots);
    std::vector<Slot> slots_;
    std::vector<std::pair<std::string_view, int32_t>> entries_;
    size_t mask_ = 0;
};

// Merges one pre-tokenized word (raw bytes) into token ids, with a bounded word cache.
class BpeModel {
public:
    std::array<int32_t, 256> byte_ids{};   // single-byte token ids (the initial symbols)
    MergeTable merges;
    // ignore_merges: a word that is itself a vocabulary token maps to it directly (HF option).
    bool ignore_merges = false;
    const StringIdMap* vocab = nullptr;

    void encode_word(std::string_view word, std::vector<int32_t>& out) const;
    // O(n log n) merge by rank (lowest rank first, leftmost on ties), no cache.
    void merge_word(std::string_view word, std::vector<int32_t>& out) const;

private:
    static constexpr size_t kCacheMaxEntries = 1 << 18;
    static constexpr size_t kCacheMaxWordBytes = 256;
    mutable std::mutex cache_mutex_;
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    mutable std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> cache_;
};

}  // namespace qnext::text
