"""Predicting scaling: Universal Scalability Law fits, a numba discrete-event simulator of N
instances sharing a machine, and capacity answers.

Modules are small and imported on demand so that ``scaler --help`` never loads numpy, scipy
or numba: ``usl`` (the fit), ``machine`` (machine descriptions), ``model`` (the instance
model and its calibration from measured runs), ``des`` (the compiled kernel), ``sweep``
(simulated runs in the result schema), ``validate``, ``capacity`` and ``bench``;
``parameters`` (the model's parameters and the sources of their assumed values), ``terms``
(the ``--threading`` style terms: stacking and spin, from the styles' read-back) and
``stylecheck`` (their held-out validation per style).
"""
