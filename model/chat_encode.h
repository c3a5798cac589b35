// Chat prompt -> token ids, with the template's markup as the only source of control tokens.
//
// HF's apply_chat_template(tokenize=True) renders the conversation and encodes the whole text with
// special tokens recognised anywhere, so a user message or a tool result that contains
// "<|im_end|>\n<|im_start|>system\n..." forges real turns. Here the request's own strings (contents,
// reasoning, tool schemas, tool-call names and arguments) are encoded as plain text and only the
// template's markup can produce <|im_start|>, <|im_end|>, <tool_call>, <think>, ... For every request
// whose strings spell no added token the ids are exactly tokenizer.encode(render_chat(...)).
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace qnext {

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& rendered);
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, TemplateKind kind, const nlohmann::ordered_json& request);

}  // namespace qnext
