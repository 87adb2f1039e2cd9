"""scaler: measure, plot and predict how CPU inference scales across processes, partitions and VMs."""

__version__ = "0.1.0"
