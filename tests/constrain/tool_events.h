// Shared by the tool-call tests (JSON and XML formats): whether a grammar allows a token after a prefix; feed a
// text to the streaming parser in chunks and fold its events.
#pragma once
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/constrain/constrain.h"
#include "tests/constrain/test_util.h"

namespace qnext::constrain::testing {

using json = nlohmann::ordered_json;

inline bool allowed_next(const Grammar& g, const std::string& prefix, const std::string& token_text) {
    Matcher m(g);
    for (int32_t id : ids_of(g.vocab(), prefix)) EXPECT_TRUE(m.accept_token(id)) << prefix;
    std::vector<uint32_t> mask(m.mask_words());
    m.fill_next_token_bitmask(mask.data());
    return token_allowed(mask.data(), ids_of(g.vocab(), token_text).at(0));
}


inline std::vector<ToolCallEvent> feed(ToolCallParser& p, const std::string& text, size_t chunk) {
    std::vector<ToolCallEvent> all;
    for (size_t i = 0; i < text.size(); i += chunk) {
        auto ev = p.push(std::string_view(text).substr(i, chunk));
        all.insert(all.end(), ev.begin(), ev.end());
    }
    return all;
}

struct Summary {
    std::string text, reasoning;
    std::vector<std::string> names, args_streamed, args_final;
    std::vector<json> args;
    int invalid = 0, truncated = 0;
};

inline Summary summarize(const std::vector<ToolCallEvent>& ev) {
    Summary s;
    for (const auto& e : ev) {
        switch (e.kind) {
            case ToolCallEvent::Kind::Text: s.text += e.text; break;
            case ToolCallEvent::Kind::Reasoning: s.reasoning += e.text; break;
            case ToolCallEvent::Kind::CallStart:
                EXPECT_EQ(e.index, static_cast<int>(s.names.size()));
                s.names.push_back(e.name);
                s.args_streamed.emplace_back();
                break;
            case ToolCallEvent::Kind::ArgumentsDelta: s.args_streamed.at(static_cast<size_t>(e.index)) += e.text; break;
            case ToolCallEvent::Kind::CallEnd:
                EXPECT_EQ(e.text, s.args_streamed.at(static_cast<size_t>(e.index)));
                EXPECT_EQ(e.arguments.dump(), json::parse(e.text).dump());
                s.args_final.push_back(e.text);
                s.args.push_back(e.arguments);
                break;
            case ToolCallEvent::Kind::CallInvalid: ++s.invalid; break;
            case ToolCallEvent::Kind::CallTruncated: ++s.truncated; break;
        }
    }
    return s;
}

}  // namespace qnext::constrain::testing
