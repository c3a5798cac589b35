// Tokenizer::from_gguf: the tokenizer in a llama.cpp GGUF file's metadata (see tokenizer.h).
//   tokenizer.ggml.model  "gpt2" (byte-level BPE)       tokenizer.ggml.pre  "qwen2" / "qwen35" (the Qwen split regexes)
//   tokenizer.ggml.tokens [STRING] byte-level spellings   tokenizer.ggml.merges [STRING] "a b", in rank order
//   tokenizer.ggml.token_type [INT32]: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED (padding), 6 BYTE
#include <algorithm>
#include <set>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_impl.h"
#include "model/tokenizer_json.h"

namespace qnext {

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
    const std::string name = f.path().string();
    auto fail = [&](const std::string& what) -> void {
        throw std::runtime_error(name + ": tokenizer: " + what);
    };
    const GgufValue* model = f.find("tokenizer.ggml.model");
    if (!model) fail("the file has no tokenizer (metadata 'tokenizer.ggml.model' is missing)");
    if (model->as_string("tokenizer.ggml.model") != "gpt2")
        fail("tokenizer.ggml.model '" + model->as_string("tokenizer.ggml.model") +
             "' is not supported (qnext supports byte-level BPE, \"gpt2\")");
    // The Qwen pre-tokenizers (NFC, as the HF tokenizer.json does): qwen2 is the Qwen2/Qwen3 split regex, qwen35
    // the Qwen3.5 one (combining marks join letters).
    static const std::set<std::string> kQwenPre = {"qwen2", "qwen35"};
    const GgufValue* pre = f.find("tokenizer.ggml.pre");
    const std::string pre_name = pre ? pre->as_string("tokenizer.ggml.pre") : "";
    if (!kQwenPre.count(pre_name))
        fail("pre-tokenizer '" + pre_name + "' is not supported (qnext implements the Qwen2/Qwen3 split: qwen2, qwen35)");

    const auto& tokens = f.at("tokenizer.ggml.tokens").as_array("tokenizer.ggml.tokens");
    const GgufValue* types_v = f.find("tokenizer.ggml.token_type");
    const std::vector<GgufValue>* types = types_v ? &types_v->as_array("tokenizer.ggml.token_type") : nullptr;
    if (types && types->size() != tokens.size())
        fail("token_type has " + std::to_string(types->size()) + " entries for " + std::to_string(tokens.size()) +
             " tokens");
    if (tokens.empty() || tokens.size() >= (size_t(1) << 31) - 1) fail("no tokens, or too many");

    text::TokenizerJson tj;
    tj.model = nlohmann::json{{"type", "BPE"}};
    tj.added_tokens = nlohmann::json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const std::string& t = tokens[i].as_string("tokenizer.ggml.tokens");
        const int64_t type = types ? (*types)[i].as_i64("tokenizer.ggml.token_type") : 1;
        switch (type) {
            case 1:
            case 6: tj.vocab.emplace_back(t, int64_t(i)); break;
            case 3:
            case 4:
                tj.added_tokens.push_back(
                    {{"id", int64_t(i)}, {"content", t}, {"special", type == 3}, {"normalized", false}});
                break;
            case 2:
            case 5: break;   // unknown / padding rows of the embedding table: holes
            default: fail("token " + std::to_string(i) + " has unknown type " + std::to_string(type));
        }
    }
    if (const GgufValue* merges = f.find("tokenizer.ggml.merges")) {
        const auto& m = merges->as_array("tokenizer.ggml.merges");
        tj.merges.reserve(m.size());
        for (size_t r = 0; r < m.size(); ++r) {
            const std::string& line = m[r].as_string("tokenizer.ggml.merges");
            const size_t sp = line.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
                fail("merge #" + std::to_string(r) + " \"" + line.substr(0, 64) + "\" is not \"left right\"");
            tj.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
        }
    }
    auto impl = build_tokenizer_impl(tj, /*use_nfc=*/true, f.path());
    impl->split = pre_name == "qwen35" ? text::SplitVariant::Qwen35 : text::SplitVariant::Qwen2;
    impl->dir = f.path().parent_path();
    // Padding rows past the last real token stay ids (holes), so that ids index the embedding table as in the file.
    if (impl->bytes.size() < tokens.size()) {
        impl->bytes.resize(tokens.size());
        impl->kind.resize(tokens.size(), Impl::Hole);
    }
    const auto n = int64_t(impl->bytes.size());
    auto id_of = [&](const char* key) -> std::optional<int32_t> {
        const GgufValue* v = f.find(key);
        if (!v) return std::nullopt;
        const int64_t id = v->as_i64(key);
        if (id < 0 || id >= n) fail(std::string(key) + " = " + std::to_string(id) + " is not a token id");
        return int32_t(id);
    };
    for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
        if (auto id = id_of(k)) impl->eos.push_back(*id);
    std::sort(impl->eos.begin(), impl->eos.end());
    impl->eos.erase(std::unique(impl->eos.begin(), impl->eos.end()), impl->eos.end());
    impl->pad = id_of("tokenizer.ggml.padding_token_id");
    return Tokenizer(impl);
}

}  // namespace qnext
