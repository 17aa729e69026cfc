"""The reconcile engine, one concept per module, composed by ``ReconcileCabinetLeadsPipeline``
(``cabinet_leads.pipeline``, the runbook's thin front). No module here imports the pipeline: they
share a :class:`~cabinet_leads.engine.session.WorkSession` (connection, transactions, SQL files).

- ``session``: one connection per run or step, one transaction per unit of work, SQL files run
  with bound parameters, the dry-run transaction, statement counts.
- ``record_keys``: load the records of a scope, normalise each once per change, store the keys
  (thousands per transaction, no lock); a stored record awaits its identity decision.
- ``linking``: identity in batches: candidates, decision (``cabinet_leads.identity``), writes; only
  the decision holds the identity lock.
- ``runs``: the run lock, run records, the run statistics, statement timeouts named.
- ``changes``: which leads an upstream change touches (marks in ``ops.lead_marks``).
- ``funnel_state``: recompute exactly the marked leads' kept state and claim worklist; ``verify``
  the kept state against the live views.
"""
