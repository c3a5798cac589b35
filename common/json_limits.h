// Parsing JSON that comes from outside qnext (model output, tool results, HTTP replies, user files) with
// bounds: nlohmann's parser is iterative, but dump(), the template engine, schema walks and everything else
// that visits the result recurse once per nesting level, so a 100,000-deep array overflows the C stack
// long after the parse. Every parse of untrusted text goes through parse_json_limited, which rejects
// nesting deeper than max_depth during the parse (before the deep value exists) with a message that says
// where.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext {

// Default nesting bound for untrusted JSON: far above any real tool call, schema or config (the deepest
// JSON Schema in the constrain test corpus nests 12 levels) and far below what a recursive visitor can take
// on an 8 MiB stack.
inline constexpr int kMaxJsonDepth = 256;

// Thrown for JSON that nests deeper than allowed; what() names the limit and the byte offset.
class JsonDepthError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Parses `text` as JSON (RFC 8259, no comments). Throws Json::parse_error for malformed text and
// JsonDepthError for nesting deeper than `max_depth` (a scalar is depth 0, `[1]` is depth 1).
template <class Json = nlohmann::json>
Json parse_json_limited(std::string_view text, int max_depth = kMaxJsonDepth) {
    int depth = 0;
    std::size_t opened = 0;
    typename Json::parser_callback_t cb = [&](int, typename Json::parse_event_t ev, Json&) {
        using E = typename Json::parse_event_t;
        if (ev == E::object_start || ev == E::array_start) {
            ++opened;
            if (++depth > max_depth)
                throw JsonDepthError("JSON nests deeper than " + std::to_string(max_depth) + " levels (container #" +
                                     std::to_string(opened) + ")");
        } else if (ev == E::object_end || ev == E::array_end) {
            --depth;
        }
        return true;
    };
    return Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
}

// Like parse_json_limited, but returns a discarded value (is_discarded()) instead of throwing, for callers
// that report their own error. `error` (optional) receives the reason.
template <class Json = nlohmann::json>
Json try_parse_json_limited(std::string_view text, std::string* error = nullptr, int max_depth = kMaxJsonDepth) {
    try {
        return parse_json_limited<Json>(text, max_depth);
    } catch (const std::exception& e) {
        if (error) *error = e.what();
        return Json(Json::value_t::discarded);
    }
}

// Nesting depth of an already built value, computed without recursion (for values built in code from
// pieces that were each bounded).
template <class Json>
int json_depth(const Json& root) {
    struct Item {
        const Json* v;
        int d;
    };
    std::vector<Item> stack{{&root, 0}};
    int best = 0;
    while (!stack.empty()) {
        Item it = stack.back();
        stack.pop_back();
        if (!it.v->is_structured()) continue;
        best = std::max(best, it.d + 1);
        for (const auto& child : *it.v) stack.push_back({&child, it.d + 1});
    }
    return best;
}

}  // namespace qnext
