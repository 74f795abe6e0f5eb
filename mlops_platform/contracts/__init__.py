"""Data contracts: Great Expectations rules per table, run on landed batches before they are
published into `raw` (write-audit-publish); failing rows go to `quarantine.<table>` with the
reason, never silently dropped, and a failing contract stops everything downstream."""
