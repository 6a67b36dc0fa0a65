"""Numpy sensor types, rig calibration, readers, BEV rasterisation and fault injection."""
