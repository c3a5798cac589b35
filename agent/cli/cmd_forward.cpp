#include "agent/cli/commands.h"

namespace qnext::cli {
void add_forward_commands(Context&) {}
}  // namespace qnext::cli
