// A byte range [begin, end) of a string; the chat renderer marks with it the parts of a prompt that come
// from the request (contents, tool schemas, arguments) so that the tokenizer encodes them as plain text.
#pragma once
#include <cstddef>

namespace qnext {

struct TextSpan {
    size_t begin = 0;
    size_t end = 0;
    bool operator==(const TextSpan&) const = default;
};

}  // namespace qnext
