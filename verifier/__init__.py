"""The verifier side: audits of submitted jobs, by re-executing sampled tasks and comparing.

- ``verifier.daemon``: ``VerifierDaemon``, follow submissions, draw their verifier (``lockSeed``),
  audit the jobs drawn to this verifier, store the evidence, submit the verdict, settle the job
  after its challenge window; restart-safe over ``verifier.journal``. Runs its services (below)
  once a pass and closes them with itself.
- ``verifier.pool``: the bounded pool of audit workers, the highest audit fee first.
- ``verifier.outputs``: where a sample's outputs come from (the manifest in the store, each proven
  against the root, or the outputs revealed on-chain), for audits and re-checks alike.
- ``verifier.reveals``: outputs that cannot be fetched: retried for a grace, then ``demandReveal``,
  then ``failUnrevealed`` when the provider does not answer.
- ``verifier.verdict``: the verdict rule with two references (pass, fail, inconclusive) and
  ``References.judge_sample``, the one path from a sample's outputs to its judgement.
- ``verifier.evidence``: the evidence documents (version 2) of audits, panel votes and watchtower re-checks.
- ``verifier.recheck``: re-checking an audited job from chain data alone, by that same path.
- ``verifier.panels``: ``PanelDuty``, draw the panels of challenged verdicts, vote from our seats
  (commit-reveal), resolve. ``verifier.watchtower``: ``Watchtower``, re-check a private share of
  other verifiers' verdicts and challenge a conclusive contradiction. Both run the pass of
  ``verifier.duty.EventDuty``: a cursor over market events, a journal, a backoff per record.
- ``verifier.secrets``: the audit secrets behind the verifier's commitments, derived from its key.
- ``verifier.compare``: one comparator per task type, with the tolerances and why each is what it is.
- ``verifier.reexecute``: the re-executor ``webi audit --reexecute`` loads by entry point.
- ``verifier.config`` (``VerifierConfig``), ``verifier.factory`` (builds the daemon),
  ``verifier.cli`` (``webi verifier ...``).
"""
