"""The inference worker: ``python -m scaler.worker``, started by the coordinator or run alone."""
