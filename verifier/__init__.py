"""The verifier daemon: sampling, re-execution, comparison (later issues)."""
