// Sandbox (owned by the sandbox work).
