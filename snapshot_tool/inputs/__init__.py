"""The fixed inputs a golden is recorded on: synthesized from the signature, or read from a file.

Whatever is chosen here is stored verbatim in the golden, and ``compare`` replays the stored
arrays. Inputs are never regenerated at compare time, so a change of numpy's random streams or
of this module can never masquerade as a model regression.

Synthesis rules (documented in the README):
- the leading dimension is the sample dimension; ``--num-samples`` rows are generated;
- other dynamic dimensions (``None``) get ``DYNAMIC_DIM`` (8) elements;
- floats are uniform in [0, 1); ints that are not quantized (any width: indices, counts,
  ids into a small vocabulary) uniform in [0, 10); quantized ints (a full-integer TFLite
  model's, whose integers stand for ``scale * (q - zero_point)``) uniform over their dtype's
  whole range, which the quantization maps onto the real range the model was calibrated on;
  bools fair coin flips; strings short random ASCII tokens (as bytes);
- a classify/regress signature's string input takes serialized tf.train.Example protos, which
  random strings are not: it needs ``--inputs FILE.tfrecord``;
- a signature without inputs gets no arrays, and is run once (see :func:`batches`);
- a scalar (rank-0) input is a setting, not data (a TF1 ``keep_prob`` or ``is_training``, a
  temperature): its value cannot be guessed, so synthesis refuses it and says how to give
  it: ``record --set NAME=VALUE`` (:mod:`.settings`) or a 0-d array in an inputs file.

Scalar inputs given in a file (0-d arrays) have no sample dimension: they are fed unchanged
with every batch (:mod:`.batching` owns that rule) and stored in the golden as scalars.

Files: ``.npz`` and ``.h5`` arrays are matched to inputs by name; a ``.tfrecord`` file's
records feed a signature whose only input is a string tensor (serialized tf.train.Example).
"""
