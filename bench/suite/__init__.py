"""The benchmark suite (``python -m bench.suite``; the usage is in ``cli``), by role: ``registry``
(the benchmarks), ``summaries`` (their figures against their floors), ``runner`` (one benchmark's
process), ``probe`` (the machine), ``render`` (docs/benchmarks.md) and ``cli`` (the command)."""
