"""Stage 3, scoring: the scheduler fans out prompts with keyed adaptive concurrency, retries, hard
budgets and the SQLite cache (schema by migrations); failures are recorded outcomes."""
