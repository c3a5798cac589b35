#include "model/chat_encode.h"

namespace qnext {

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& rendered) {
    return tokenizer.encode_with_plain_spans(rendered.text, rendered.content);
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, TemplateKind kind, const nlohmann::ordered_json& request) {
    return encode_chat(tokenizer, render_chat_spans(kind, request));
}

}  // namespace qnext
