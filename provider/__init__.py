"""The provider daemon and the inference runtime (later issues)."""
