// Byte-level BPE merging (mirrors tokenizers' models/bpe/word.rs merge_all without dropout).
#include "model/tokenizer_bpe.h"

#include <algorithm>
#include <functional>

#include <utf8proc.h>

namespace qnext::text {

const std::array<char32_t, 256>& byte_to_unicode() {
    static const std::array<char32_t, 256> table = [] {
        std::array<char32_t, 256> t{};
        std::array<bool, 256> printable{};
        for (int b = '!'; b <= '~'; ++b) printable[b] = true;
        for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
        for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) t[b] = printable[b] ? static_cast<char32_t>(b) : next++;
        return t;
    }();
    return table;
}

namespace {
// Code point (< 324) -> byte, or -1.
const std::array<int16_t, 324>& unicode_to_byte() {
    static const std::array<int16_t, 324> table = [] {
        std::array<int16_t, 324> t{};
        t.fill(-1);
        const auto& fwd = byte_to_unicode();
        for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
        return t;
    }();
    return table;
}
}  // namespace

bool byte_level_decode(std::string_view s, std::string& out) {
    const auto& inv = unicode_to_byte();
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        utf8proc_int32_t cp = 0;
        const auto len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
        if (len <= 0 || cp < 0 || cp >= static_cast<utf8proc_int32_t>(inv.size()) || inv[cp] < 0) return false;
        out += static_cast<char>(inv[cp]);
        i += static_cast<size_t>(len);
    }
    return true;
}

void MergeTable::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
}

bool MergeTable::insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if ((size_ + 1) * 2 > slots_.size()) {   // grow (keeps load <= 1/2)
        std::vector<Entry> old;
        old.swap(slots_);
        reserve(std::max<size_t>(16, old.size()));
        for (const auto& e : old)
            if (e.key != kEmpty)
                insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xffffffffu), e.rank, e.merged);
    }
    const uint64_t key = pack(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
        Entry& e = slots_[i];
        if (e.key == key) return false;
        if (e.key == kEmpty) {
            e = Entry{key, rank, merged};
            ++size_;
            return true;
        }
    }
}

void StringIdMap::reserve(size_t n) {
    entries_.reserve(n);
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
}

void StringIdMap::rehash(size_t cap) {
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (size_t e = 0; e < entries_.size(); ++e) {
        const uint64_t h = hash(entries_[e].first);
        size_t i = h & mask_;
        while (slots_[i].tag != 0) i = (i + 1) & mask_;
        slots_[i] = Slot{static_cast<uint32_t>(h >> 32) | 1u, static_cast<uint32_t>(e)};
    }
}

void StringIdMap::insert(std::string_view key, int32_t id) {
    if ((entries_.size() + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
    const uint64_t h = hash(key);
    const auto tag = static_cast<uint32_t>(h >> 32) | 1u;
    size_t i = h & mask_;
    for (; slots_[i].tag != 0; i = (i + 1) & mask_)
        if (slots_[i].tag == tag && entries_[slots_[i].entry].first == key) return;
    slots_[i] = Slot{tag, static_cast<uint32_t>(entries_.size())};
    entries_.emplace_back(key, id);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
    // Symbols form a doubly linked list over the word's bytes; `len` 0 marks a merged-away symbol.
    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        int32_t len;
    };
    struct Candidate {
        int32_t rank;
        int32_t pos;
        int32_t merged;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<Symbol> sym;
    thread_local std::vector<Candidate> heap;   // min-heap on (rank, pos) via std::greater
    const int32_t n = static_cast<int32_t>(word.size());
    sym.resize(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i)
        sym[i] = Symbol{byte_ids[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, 1};

    const std::greater<Candidate> later;
    heap.clear();
    auto push = [&](Candidate c) {
        heap.push_back(c);
        std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int32_t i = 0; i + 1 < n; ++i)
        if (const auto* m = merges.find(sym[i].id, sym[i + 1].id)) heap.push_back({m->rank, i, m->merged});
    std::make_heap(heap.begin(), heap.end(), later);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        const Candidate top = heap.back();
        heap.pop_back();
        Symbol& left = sym[top.pos];
        if (left.len == 0 || left.next < 0) continue;
        Symbol& right = sym[left.next];
        const auto* m = merges.find(left.id, right.id);
        if (!m || m->merged != top.merged) continue;   // stale candidate
        left.id = top.merged;
        left.len += right.len;
        right.len = 0;
        left.next = right.next;
        if (left.next >= 0) sym[left.next].prev = top.pos;
        if (left.prev >= 0)
            if (const auto* p = merges.find(sym[left.prev].id, left.id)) push({p->rank, left.prev, p->merged});
        if (left.next >= 0)
            if (const auto* q = merges.find(left.id, sym[left.next].id)) push({q->rank, top.pos, q->merged});
    }
    for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (word.size() == 1) {
        out.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
        return;
    }
    if (ignore_merges && vocab) {
        if (const int32_t id = vocab->find(word); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const bool cacheable = word.size() <= kCacheMaxWordBytes;
    if (cacheable) {
        std::lock_guard lock(cache_mutex_);
        if (auto it = cache_.find(word); it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t start = out.size();
    merge_word(word, out);
    if (cacheable) {
        std::lock_guard lock(cache_mutex_);
        if (cache_.size() >= kCacheMaxEntries) cache_.clear();
        cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()));
    }
}

}  // namespace qnext::text
