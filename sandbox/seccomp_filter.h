// Internal: the sandbox seccomp program (see seccomp_filter.cpp for the rules).
#pragma once

#include <vector>

namespace qnext::sandbox::detail {

// BPF program bytes (an array of struct sock_filter, 8 bytes each). Throws SandboxError.
std::vector<unsigned char> build_seccomp_bpf(bool allow_network);

}  // namespace qnext::sandbox::detail
