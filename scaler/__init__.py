"""scaler: measure, plot and predict how CPU inference scales over processes, partitions, VMs."""

__version__ = "0.1.0"
