"""The tool's own benchmarks (``make bench``, ``python -m scaler.bench``): what the harness
costs, how close the best layouts come to the machine's peak, and how long start-up takes.

Not part of ``make test``: a full run takes minutes and wants a quiet machine. Modules:
``harness`` (timed loop vs bare loop, null engine through the coordinator), ``peak`` (fp32
FMA peak with a numba kernel), ``efficiency`` (best layout per precision, run by the tool),
``startup`` (invocation to first timed query, ``--help``), ``simulator`` (hook for the
simulator's speed benchmark), ``machine`` (load and others' CPU use), ``report`` (table,
atomic ``bench.json`` / ``bench.md``), ``config`` (full and ``--quick`` settings).
"""
