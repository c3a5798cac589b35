#include "agent/cli/commands.h"

namespace qnext::cli {
void add_model_commands(Context&) {}
}  // namespace qnext::cli
