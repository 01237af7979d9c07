"""Stage 1, input: benchmark items loaded and validated, sampled, and checked for order sensitivity."""
