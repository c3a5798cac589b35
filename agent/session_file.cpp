#include "agent/session_file.h"
#include "common/json_limits.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace qnext::agent {

namespace {
constexpr char kMagic[] = "QNEXT-SESSION 1\n";
}

void save_session(const std::filesystem::path& file, const SessionHeader& h, const Backend& backend) {
    std::filesystem::path tmp = file;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("cannot write session file " + tmp.string());
        std::string header = ojson{{"messages", h.messages}, {"thinking", h.thinking}, {"backend", h.backend}}.dump();
        uint64_t n = header.size();
        unsigned char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
        out.write(kMagic, sizeof(kMagic) - 1);
        out.write(reinterpret_cast<const char*>(len), 8);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        backend.save_state(out);
        if (!out) throw std::runtime_error("writing session file " + tmp.string() + " failed");
    }
    std::filesystem::rename(tmp, file);
}

SessionHeader load_session(const std::filesystem::path& file, Backend& backend, std::optional<bool> expect_thinking) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open session file " + file.string());
    char magic[sizeof(kMagic) - 1];
    if (!in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0)
        throw std::runtime_error(file.string() + " is not a qnext session file");
    unsigned char len[8];
    if (!in.read(reinterpret_cast<char*>(len), 8)) throw std::runtime_error(file.string() + ": truncated header");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
    if (n > (64u << 20)) throw std::runtime_error(file.string() + ": header length " + std::to_string(n) + " is implausible");
    std::string header(n, '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(n))) throw std::runtime_error(file.string() + ": truncated header");
    ojson j = try_parse_json_limited<ojson>(header);
    if (j.is_discarded() || !j.is_object() || !j.contains("messages") || !j["messages"].is_array())
        throw std::runtime_error(file.string() + ": corrupt session header");
    SessionHeader h;
    h.messages = j["messages"];
    h.thinking = j.value("thinking", false);
    h.backend = j.value("backend", std::string());
    if (h.backend != backend.name())
        throw std::runtime_error(file.string() + " was saved with backend '" + h.backend + "', not '" + backend.name() + "'");
    if (expect_thinking && *expect_thinking != h.thinking)
        throw std::runtime_error(file.string() + " was saved in " + (h.thinking ? "thinking" : "instruct") +
                                 " mode; this chat runs in " + (*expect_thinking ? "thinking" : "instruct") +
                                 " mode (restart " + (h.thinking ? "with" : "without") + " --thinking to load it)");
    backend.load_state(in);
    return h;
}

}  // namespace qnext::agent
