"""The provider side: the daemon that serves jobs on a GPU owner's machine, and the inference runtime.

- ``provider.runtime``: ``Runtime``, from a job spec to canonical outputs (model bundle checks,
  devices, batching, the four task types); the verifier re-executes with it too.
- ``provider.daemon``: ``ProviderDaemon``, find, claim, run, publish, submit and follow each job,
  restart-safe over ``provider.journal`` (one SQLite row per job, and the block cursor).
- ``provider.refusals`` (why a job is not for us, on-chain first), ``provider.screen`` (the optional
  fp32/bf16 model screen), ``provider.follow`` (after the submission: draws, finalization),
  ``provider.reveals`` (answering reveal demands), ``provider.appeals`` (challenging a wrong fail),
  ``provider.outputs`` (our copy of the committed outputs).
- ``provider.config``: ``DaemonSettings`` (shared with the verifier) and ``ProviderConfig``, from TOML.
- ``provider.epochs``: draw weights follow stakes only in sync phases; ``sync_own_weight`` brings a
  daemon's own weight up to date (both daemons call it).
- ``provider.gpu`` (NVML facts and telemetry), ``provider.metrics`` (Prometheus),
  ``provider.factory`` (builds the daemon), ``provider.cli`` (``webi provider ...``).
- ``provider.cheater``: a wrong-answer provider for ``webi demo --cheater``, on the local devnet only.
"""
