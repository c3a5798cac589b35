#include "agent/cli/commands.h"

namespace qnext::cli {
void add_text_commands(Context&) {}
}  // namespace qnext::cli
