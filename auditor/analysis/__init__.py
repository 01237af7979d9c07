"""Stage 4, analysis: per-ordering scores into item statistics, item decisions under a stated null,
dataset tests, the paper-exact mode and sequential spot checks."""
