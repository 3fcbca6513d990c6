"""The inference runtime: fetch a job's model and inputs by CID, run them, give canonical outputs.

Used by the provider daemon to do the work and by the verifier to redo a sample of it, so both
compute outputs the same way. Entry point: ``Runtime``.
"""

from provider.runtime.runtime import LoadedModel, Runtime, RuntimeLimits

__all__ = ["LoadedModel", "Runtime", "RuntimeLimits"]
