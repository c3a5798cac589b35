// Session files (`/save`, `/load` in chat; AgentSession persistence): the conversation and the backend's state
// in one file, so a session resumes without recomputing its history.
//   "QNEXT-SESSION 1\n" · u64 little-endian header length · header JSON {messages, thinking, template, model}
//   · the backend's state blob (Backend::save_state) to the end of the file.
#pragma once
#include <filesystem>
#include <optional>

#include "agent/backend.h"

namespace qnext::agent {

struct SessionHeader {
    ojson messages = ojson::array();
    bool thinking = false;
    std::string backend;  // Backend::name() of the saving session (checked on load)
};

void save_session(const std::filesystem::path& file, const SessionHeader& header, const Backend& backend);
// Reads the header and hands the rest to backend.load_state. Errors name the file and what is wrong. With
// `expect_thinking`, a session saved in the other mode (instruct vs thinking) is refused before anything is
// loaded: the cached state and the template belong to the mode it was saved in.
SessionHeader load_session(const std::filesystem::path& file, Backend& backend,
                           std::optional<bool> expect_thinking = std::nullopt);

}  // namespace qnext::agent
