"""Features: bar and microstructure features computed by one incremental API (streaming, O(1) per event
where the formula allows) and by a batch path over tables that runs the same compiled code."""
