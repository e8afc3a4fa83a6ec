"""The golden file: its schema (:mod:`.schema`), reading and writing it (:mod:`.io`) and
describing it for ``show`` (:mod:`.describe`).

Nothing in this package imports TensorFlow or :mod:`snapshot_tool.models`: a golden is plain
HDF5 and numpy, readable wherever h5py is.
"""
