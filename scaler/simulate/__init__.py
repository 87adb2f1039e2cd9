"""Predicting scaling: Universal Scalability Law fits, a numba discrete-event simulator of N
instances sharing a machine, and capacity answers.

Modules are small and imported on demand so that ``scaler --help`` never loads numpy, scipy
or numba: ``usl`` (the fit), ``machine`` (machine descriptions), ``model`` (the instance
model and its calibration from measured runs), ``des`` (the compiled kernel), ``sweep``
(simulated runs in the result schema), ``validate``, ``capacity`` and ``bench``.
"""
