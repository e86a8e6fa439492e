"""Per-provider tests: every fixture through the real route and a real worker."""
