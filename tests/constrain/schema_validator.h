// An independent JSON-Schema validator for the test suite (no code shared with the grammar
// compiler): validates parsed instances; patterns use std::wregex (ECMAScript) on UTF-32.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace qnext::constrain::testing {

// nullopt when `instance` is valid, else a message with the JSON pointer of the failure.
std::optional<std::string> validate(const nlohmann::ordered_json& instance, const nlohmann::ordered_json& schema);

}  // namespace qnext::constrain::testing
