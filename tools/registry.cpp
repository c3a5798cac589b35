// Tool registry (owned by the tools work).
