"""Diagnosis beyond the verdict: where a candidate's numbers start to move, and which
tolerances the evidence supports.

- :mod:`.divergence` (numpy only): match the intermediate tensors of two traced runs and
  find the first one whose difference exceeds the output tolerance scaled to its magnitude.
- :mod:`.tracing` (TensorFlow, imported lazily): run one batch through a model of any kind
  with its intermediate tensors exposed.
- :mod:`.localize`: ``compare --localize`` orchestration.
- :mod:`.evidence` (numpy only): error distributions, proposed limits, the cost table and
  the commented ``snapshot.toml``.
- :mod:`.calibrate`: ``snapshot-tool calibrate`` orchestration.
"""
