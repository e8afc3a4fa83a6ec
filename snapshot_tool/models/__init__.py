"""Loading a MODEL path and running one of its signatures over numpy batches.

Every kind of model is wrapped in a :class:`Model` with the same three things: its path, its
signatures (names, input and output specs), and ``run(signature, feeds) -> dict[name, ndarray]``.
Outputs are always materialized as numpy arrays, so lazy execution is finished by the time
``run`` returns (that matters for latency measurement too).

Kinds, chosen by :func:`load_model` from the path:

- ``saved_model``: a SavedModel directory loaded with ``tf.saved_model.load`` (TF2 exports,
  Keras 3 ``model.export``);
- ``saved_model_tf1``: a SavedModel run in a ``tf.compat.v1.Session`` from its signature_defs
  (TF1 / Estimator / TF Serving exports, which have no object graph, and any SavedModel
  ``tf.saved_model.load`` rejects);
- ``frozen_graph``: a frozen ``GraphDef`` (``.pb``) run like a TF1 SavedModel, under a
  ``serving_default`` written from its placeholders and sink tensors;
- ``tflite``: a TFLite flatbuffer, run by LiteRT's interpreter (``ai_edge_litert``) or, when
  that is not installed, ``tf.lite.Interpreter``;
- ``keras``: a Keras 3 ``.keras`` file, presented with the signature ``model.export()`` gives
  the same model, so it can be compared against a golden recorded from the export.

TensorFlow is imported here, lazily, and only when a model is actually loaded.
"""
