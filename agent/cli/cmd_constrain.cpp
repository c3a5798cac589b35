#include "agent/cli/commands.h"

namespace qnext::cli {
void add_constrain_commands(Context&) {}
}  // namespace qnext::cli
