// Tokenizer::load: reads tokenizer.json (+ tokenizer_config.json, generation_config.json),
// validates that it is a byte-level BPE tokenizer of the supported shape and builds the tables.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "model/gguf.h"
#include "common/json_limits.h"
#include "model/tokenizer_impl.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_pretokenize.h"

namespace qnext {
namespace {

using nlohmann::json;

[[noreturn]] void unsupported(const std::filesystem::path& file, const std::string& what) {
    throw std::runtime_error(file.string() + ": unsupported tokenizer: " + what +
                             " (qnext supports byte-level BPE tokenizers of the Qwen2/Qwen3 family)");
}

std::string type_of(const json& j) { return j.is_object() ? j.value("type", std::string()) : std::string(); }

// normalizer: null, NFC, or a Sequence of those.
bool check_normalizer(const json& n, const std::filesystem::path& file) {
    if (n.is_null()) return false;
    const auto t = type_of(n);
    if (t == "NFC") return true;
    if (t == "Sequence") {
        bool any = false;
        for (const auto& sub : n.at("normalizers")) any = check_normalizer(sub, file) || any;
        return any;
    }
    unsupported(file, "normalizer " + n.dump());
}

// ByteLevel as decoder / post-processor: its options (add_prefix_space, trim_offsets, use_regex)
// only affect pre-tokenization and offsets, never the ids or the decoded text.
void check_byte_level(const json& b, const std::filesystem::path& file, const char* where) {
    if (type_of(b) != "ByteLevel") unsupported(file, std::string(where) + " " + b.dump());
}

text::SplitVariant check_pre_tokenizer(const json& p, const std::filesystem::path& file) {
    if (type_of(p) != "Sequence" || !p.contains("pretokenizers") || p["pretokenizers"].size() != 2)
        unsupported(file, "pre_tokenizer " + p.dump() + " (expected Sequence[Split, ByteLevel])");
    const auto& split = p["pretokenizers"][0];
    const std::string regex = split.contains("pattern") && split["pattern"].contains("Regex") &&
                                      split["pattern"]["Regex"].is_string()
                                  ? split["pattern"]["Regex"].get<std::string>()
                                  : "";
    if (type_of(split) != "Split" || split.value("behavior", "") != "Isolated" || split.value("invert", false) ||
        (regex != text::kQwenSplitPattern && regex != text::kQwen35SplitPattern))
        unsupported(file, "pre_tokenizer split " + split.dump() +
                              " (only the Qwen2/Qwen3 and Qwen3.5 regexes are implemented)");
    const auto& bl = p["pretokenizers"][1];
    check_byte_level(bl, file, "pre_tokenizer");
    if (bl.value("add_prefix_space", true)) unsupported(file, "ByteLevel pre_tokenizer with add_prefix_space=true");
    if (bl.value("use_regex", true)) unsupported(file, "ByteLevel pre_tokenizer with use_regex=true");
    return regex == text::kQwen35SplitPattern ? text::SplitVariant::Qwen35 : text::SplitVariant::Qwen2;
}

void check_model(const json& m, const std::filesystem::path& file) {
    if (m.contains("type") && m["type"] != "BPE") unsupported(file, "model type " + m["type"].dump());
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
        unsupported(file, "BPE dropout");
    if (m.value("byte_fallback", false)) unsupported(file, "BPE byte_fallback");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (m.contains(k) && !m[k].is_null() && !m[k].get<std::string>().empty())
            unsupported(file, std::string("BPE ") + k);
}

std::optional<json> read_json_if_exists(const std::filesystem::path& file) {
    if (!std::filesystem::exists(file)) return std::nullopt;
    std::ifstream in(file, std::ios::binary);
    try {
        return parse_json_limited(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    } catch (const std::exception& e) {
        throw std::runtime_error(file.string() + ": invalid JSON: " + e.what());
    }
}

// tokenizer_config.json token fields are a string or {"content": ...}.
std::optional<std::string> token_field(const json& cfg, const char* key) {
    if (!cfg.contains(key)) return std::nullopt;
    const auto& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
}

// What HF's ByteLevel decoder makes of an added token's text: each character mapped back through
// the byte alphabet if all of them are in it, else the text's own UTF-8 bytes.
std::string hf_byte_level_decode(const std::string& content) {
    std::string out;
    return text::byte_level_decode(content, out) ? out : content;
}

}  // namespace

// The tables of a byte-level BPE tokenizer from its vocabulary, merges and added tokens (tokenizer.json's, or
// the same read from a GGUF file's tokenizer.ggml.* metadata). `file` names the source in errors.
std::shared_ptr<Tokenizer::Impl> build_tokenizer_impl(const text::TokenizerJson& tj, bool use_nfc,
                                                      const std::filesystem::path& file) {
    using Impl = Tokenizer::Impl;
    auto impl = std::make_shared<Impl>();
    impl->nfc = use_nfc;
    impl->bpe.ignore_merges = tj.model.value("ignore_merges", false);

    // ---- ids: vocabulary + added tokens -------------------------------------------------------
    int64_t max_id = -1;
    for (const auto& [tok, id] : tj.vocab) max_id = std::max(max_id, id);
    for (const auto& a : tj.added_tokens) max_id = std::max<int64_t>(max_id, a.at("id").get<int64_t>());
    if (max_id < 0 || max_id >= (int64_t{1} << 31) - 1) unsupported(file, "empty vocabulary or ids out of range");
    for (const auto& [tok, id] : tj.vocab)
        if (id < 0) unsupported(file, "negative token id for " + tok);
    impl->bytes.resize(static_cast<size_t>(max_id + 1));
    impl->kind.assign(static_cast<size_t>(max_id + 1), Impl::Hole);

    text::StringIdMap by_string;   // byte-level string -> id
    by_string.reserve(tj.vocab.size());
    for (const auto& [tok, id64] : tj.vocab) {
        const auto id = static_cast<int32_t>(id64);
        std::string raw;
        if (!text::byte_level_decode(tok, raw)) raw = tok;   // e.g. special text put in the vocab
        impl->bytes[id] = std::move(raw);
        impl->kind[id] = Impl::Vocab;
        by_string.insert(tok, id);
    }
    impl->vocab.reserve(tj.vocab.size());
    for (const auto& [tok, id64] : tj.vocab) impl->vocab.insert(impl->bytes[static_cast<size_t>(id64)], static_cast<int32_t>(id64));

    for (int b = 0; b < 256; ++b) {
        const char ch = static_cast<char>(b);
        const int32_t id = impl->vocab.find(std::string_view(&ch, 1));
        if (id < 0) unsupported(file, "byte " + std::to_string(b) + " has no token");
        impl->bpe.byte_ids[b] = id;
    }
    impl->bpe.vocab = &impl->vocab;

    // ---- merges ----------------------------------------------------------------------------------
    impl->bpe.merges.reserve(tj.merges.size());
    std::string joined;
    for (size_t rank = 0; rank < tj.merges.size(); ++rank) {
        const auto& [a, b] = tj.merges[rank];
        joined.assign(a).append(b);
        const int32_t ia = by_string.find(a), ib = by_string.find(b), ij = by_string.find(joined);
        if (ia < 0 || ib < 0 || ij < 0)
            throw std::runtime_error(file.string() + ": merge #" + std::to_string(rank) + " \"" + a + " " + b +
                                     "\" refers to a token missing from the vocabulary");
        impl->bpe.merges.insert(ia, ib, static_cast<int32_t>(rank), ij);
    }

    // ---- added tokens ---------------------------------------------------------------------------
    for (const auto& a : tj.added_tokens) {
        AddedToken t;
        t.content = a.at("content").get<std::string>();
        t.id = a.at("id").get<int32_t>();
        t.special = a.value("special", false);
        t.lstrip = a.value("lstrip", false);
        t.rstrip = a.value("rstrip", false);
        t.single_word = a.value("single_word", false);
        t.normalized = a.value("normalized", !t.special);
        if (t.content.empty()) unsupported(file, "empty added token " + std::to_string(t.id));
        if (t.normalized && impl->nfc) t.content = nfc(t.content);
        impl->bytes[t.id] = t.content;
        impl->kind[t.id] = t.special ? Impl::Special : Impl::Added;
        impl->added_decoded[t.id] = hf_byte_level_decode(t.content);
        impl->added.push_back(std::move(t));
    }
    std::vector<const AddedToken*> raw, normalized;
    for (const auto& t : impl->added) (t.normalized ? normalized : raw).push_back(&t);
    impl->raw_matcher.build(std::move(raw));
    impl->normalized_matcher.build(std::move(normalized));

    return impl;
}

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
    const bool is_dir = std::filesystem::is_directory(path);
    if (!is_dir && looks_like_gguf(path)) return from_gguf(*GgufFile::open(path));
    const auto file = is_dir ? path / "tokenizer.json" : path;
    if (!std::filesystem::exists(file))
        throw std::runtime_error("no tokenizer.json at " + path.string() + " (pass a model folder or the file)");
    auto tj = text::read_tokenizer_json(file);

    check_model(tj.model, file);
    const bool nfc = check_normalizer(tj.normalizer, file);
    const text::SplitVariant split = check_pre_tokenizer(tj.pre_tokenizer, file);
    check_byte_level(tj.decoder, file, "decoder");
    if (!tj.post_processor.is_null()) check_byte_level(tj.post_processor, file, "post_processor");
    auto impl = build_tokenizer_impl(tj, nfc, file);
    impl->split = split;
    impl->dir = is_dir ? path : path.parent_path();

    // ---- stop / pad tokens -----------------------------------------------------------------------
    Tokenizer tok(impl);
    const auto cfg = read_json_if_exists(impl->dir / "tokenizer_config.json");
    const auto gen = read_json_if_exists(impl->dir / "generation_config.json");
    auto add_eos_text = [&](const std::optional<std::string>& text) {
        if (!text) return;
        if (auto id = tok.token_id(*text)) impl->eos.push_back(*id);
    };
    if (gen && gen->contains("eos_token_id")) {
        const auto& e = (*gen)["eos_token_id"];
        if (e.is_number_integer()) impl->eos.push_back(e.get<int32_t>());
        else if (e.is_array())
            for (const auto& x : e) impl->eos.push_back(x.get<int32_t>());
    } else {
        if (cfg) add_eos_text(token_field(*cfg, "eos_token"));
        add_eos_text(std::string("<|endoftext|>"));
    }
    std::sort(impl->eos.begin(), impl->eos.end());
    impl->eos.erase(std::unique(impl->eos.begin(), impl->eos.end()), impl->eos.end());
    if (cfg)
        if (auto pad = token_field(*cfg, "pad_token")) impl->pad = tok.token_id(*pad);
    return tok;
}

}  // namespace qnext
