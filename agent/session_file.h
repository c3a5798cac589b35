// Session files (`/save`, `/load` in chat; AgentSession persistence): the conversation and the backend's state
// in one file, so a session resumes without recomputing its history.
//   "QNEXT-SESSION 1\n" · u64 little-endian header length · header JSON {messages, thinking, template, model}
//   · the backend's state blob (Backend::save_state) to the end of the file.
#pragma once
#include <filesystem>

#include "agent/backend.h"

namespace qnext::agent {

struct SessionHeader {
    ojson messages = ojson::array();
    bool thinking = false;
    std::string backend;  // Backend::name() of the saving session (checked on load)
};

void save_session(const std::filesystem::path& file, const SessionHeader& header, const Backend& backend);
// Reads the header and hands the rest to backend.load_state. Errors name the file and what is wrong.
SessionHeader load_session(const std::filesystem::path& file, Backend& backend);

}  // namespace qnext::agent
