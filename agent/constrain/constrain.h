// One-stop header for users of constrained decoding (agent runtime, CLI, HTTP server).
//
//   auto vocab = Vocabulary::from_tokenizer(tokenizer);
//   auto g = compile_tool_calls(vocab, tools, "auto", /*parallel*/ true, /*thinking*/ false);
//   Matcher m(g);                                   // one per request
//   each step: m.fill_next_token_bitmask(words, n_words) -> sample -> m.accept_token(id)
//   stop when m.is_terminated() (a stop token, <|im_end|> or <|endoftext|>, was accepted).
//   Parse the detokenized text (special tokens as literal text) with ToolCallParser.
// Errors: SchemaError (unsupported keyword + JSON pointer) or std::runtime_error (bad tool list /
// tool_choice naming no declared tool), thrown at compile time, never while decoding.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/constrain/bitmask.h"
#include "agent/constrain/grammar.h"
#include "agent/constrain/tool_call_parser.h"
#include "agent/constrain/vocabulary.h"

namespace qnext::constrain {

inline std::shared_ptr<const Grammar> compile_tool_calls(VocabularyPtr vocab, const nlohmann::ordered_json& tools,
                                                         const std::string& tool_choice, bool parallel_tool_calls,
                                                         bool thinking, ToolFormat format = ToolFormat::Json) {
    ToolCallOptions o;
    o.choice = tool_choice;
    o.parallel_tool_calls = parallel_tool_calls;
    o.thinking = thinking;
    o.format = format;
    return std::make_shared<const Grammar>(Grammar::from_tools(tools, o, std::move(vocab)));
}

inline std::shared_ptr<const Grammar> compile_json_schema(VocabularyPtr vocab, const nlohmann::ordered_json& schema,
                                                          bool thinking = false) {
    SchemaOptions o;
    o.thinking = thinking;
    return std::make_shared<const Grammar>(Grammar::from_json_schema(schema, std::move(vocab), o));
}

}  // namespace qnext::constrain
