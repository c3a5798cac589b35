#include "agent/constrain/vocabulary.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>

#include "model/tokenizer.h"

namespace qnext::constrain {

ByteTrie::ByteTrie(std::vector<std::pair<std::string, int32_t>> entries) {
    std::erase_if(entries, [](const auto& e) { return e.first.empty(); });
    std::sort(entries.begin(), entries.end());
    // Open nodes along the current path: path[d] = node index at depth d+1.
    std::vector<uint32_t> path;
    std::string prev;
    ids_at_.push_back(0);
    auto close_to = [&](size_t keep) {
        while (path.size() > keep) {
            end_[path.back()] = static_cast<uint32_t>(byte_.size());
            path.pop_back();
        }
    };
    for (const auto& [bytes, id] : entries) {
        if (bytes.size() > 65535) throw std::runtime_error("constrain: token longer than 65535 bytes");
        size_t lcp = 0;
        while (lcp < prev.size() && lcp < bytes.size() && prev[lcp] == bytes[lcp]) ++lcp;
        close_to(lcp);
        for (size_t d = lcp; d < bytes.size(); ++d) {
            path.push_back(static_cast<uint32_t>(byte_.size()));
            byte_.push_back(static_cast<uint8_t>(bytes[d]));
            depth_.push_back(static_cast<uint16_t>(d + 1));
            end_.push_back(0);
            ids_at_.push_back(ids_at_.back());
        }
        max_depth_ = std::max<uint16_t>(max_depth_, static_cast<uint16_t>(bytes.size()));
        ids_.push_back(id);       // belongs to the last node created or re-visited (path.back())
        ids_at_.back() = static_cast<uint32_t>(ids_.size());
        // A duplicate string re-uses the existing node; since it is the most recent node, the
        // offsets above stay correct.
        prev = bytes;
    }
    close_to(0);
}

std::shared_ptr<const Vocabulary> Vocabulary::create(std::vector<std::string> token_bytes,
                                                     std::vector<int32_t> added_ids,
                                                     std::vector<int32_t> stop_ids) {
    auto v = std::shared_ptr<Vocabulary>(new Vocabulary());
    v->bytes_ = std::move(token_bytes);
    v->added_.assign(v->bytes_.size(), 0);
    for (int32_t id : added_ids) {
        if (id < 0 || id >= v->size()) throw std::runtime_error("constrain: added token id out of range");
        v->added_[static_cast<size_t>(id)] = 1;
    }
    std::sort(added_ids.begin(), added_ids.end());
    v->added_ids_ = std::move(added_ids);
    for (int32_t id : stop_ids)
        if (id < 0 || id >= v->size()) throw std::runtime_error("constrain: stop token id out of range");
    std::sort(stop_ids.begin(), stop_ids.end());
    stop_ids.erase(std::unique(stop_ids.begin(), stop_ids.end()), stop_ids.end());
    v->stop_ids_ = std::move(stop_ids);
    std::vector<std::pair<std::string, int32_t>> entries;
    entries.reserve(v->bytes_.size());
    for (int32_t i = 0; i < v->size(); ++i)
        if (!v->added_[static_cast<size_t>(i)] && !v->bytes_[static_cast<size_t>(i)].empty())
            entries.emplace_back(v->bytes_[static_cast<size_t>(i)], i);
    v->trie_ = ByteTrie(std::move(entries));
    std::fill(std::begin(v->byte_token_), std::end(v->byte_token_), -1);
    for (int32_t i = v->size() - 1; i >= 0; --i) {
        const std::string& b = v->bytes_[static_cast<size_t>(i)];
        if (!v->added_[static_cast<size_t>(i)] && b.size() == 1) v->byte_token_[static_cast<uint8_t>(b[0])] = i;
    }
    return v;
}

std::shared_ptr<const Vocabulary> Vocabulary::from_tokenizer(const qnext::Tokenizer& tok) {
    std::vector<std::string> bytes(static_cast<size_t>(tok.vocab_size()));
    for (int32_t i = 0; i < tok.vocab_size(); ++i) bytes[static_cast<size_t>(i)] = tok.token_bytes(i);
    return create(std::move(bytes), tok.added_token_ids(), tok.eos_ids());
}

bool Vocabulary::is_stop(int32_t id) const {
    return std::binary_search(stop_ids_.begin(), stop_ids_.end(), id);
}

std::optional<int32_t> Vocabulary::added_id(std::string_view text) const {
    for (int32_t id : added_ids_)
        if (bytes_[static_cast<size_t>(id)] == text) return id;
    return std::nullopt;
}

}  // namespace qnext::constrain
