"""The verifier side: audits of submitted jobs, by re-executing sampled tasks and comparing.

- ``verifier.daemon``: ``VerifierDaemon``, follow submissions, draw their verifier (``lockSeed``),
  audit the jobs drawn to this verifier, store the evidence, submit the verdict, settle the job
  after its challenge window; restart-safe over ``verifier.journal``.
- ``verifier.secrets``: the audit secrets behind the verifier's commitments, derived from its key.
- ``verifier.compare``: one comparator per task type, with the tolerances and why each is what it is.
- ``verifier.reexecute``: the re-executor ``webi audit --reexecute`` loads by entry point.
- ``verifier.config`` (``VerifierConfig``), ``verifier.factory`` (builds the daemon),
  ``verifier.cli`` (``webi verifier ...``).
"""
