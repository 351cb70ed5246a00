"""Benchmark evaluation: questions in, one trajectory per question and profile, verdicts, a summary."""
