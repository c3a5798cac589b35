#include "agent/cli/commands.h"

namespace qnext::cli {
void add_sandbox_commands(Context&) {}
}  // namespace qnext::cli
