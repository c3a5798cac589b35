#include "agent/cli/commands.h"

namespace qnext::cli {
void add_agent_commands(Context&) {}
}  // namespace qnext::cli
