"""The benchmarks, the accuracy harness and the chaos run: each module runs from the repository's
root as ``.venv/bin/python -m bench.<name>`` (``make bench`` runs ``bench.suite``, which runs the
others). Not part of the installed package."""
