// Agent loop (owned by the agent-runtime work).
