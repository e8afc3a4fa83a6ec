"""Task metrics (scikit-learn) recorded beside a golden's outputs, and the thresholds that gate
a candidate on them.

Two families of metrics:

* **Task metrics** need ground-truth labels. ``record`` computes them from the golden model's
  outputs and stores them under ``/metrics/<output>/<metric>``; ``compare`` computes them again
  from the candidate's outputs and the golden's stored labels, and checks the change.
* **Agreement metrics** need no labels: at compare time they measure how closely the candidate's
  outputs follow the golden's (``top1_agreement``, ``cosine_mean``, ``cosine_min``,
  ``correlation``). There is no golden value, so only absolute ``min``/``max`` limits apply.

The task of an output (``classification``, ``binary``, ``regression`` or ``none``) is inferred
from dtypes and shapes (see :func:`infer_task`) and can be overridden with
``[outputs.NAME] task = ...``. scikit-learn is imported inside the functions that use it, never
at module import, so ``snapshot-tool --help`` stays fast.

Threshold rules (all limits that are set must hold):

* ``max_drop`` is absolute and measured in the metric's *bad* direction: for a metric where higher
  is better the drop is ``golden - candidate``, for one where lower is better it is
  ``candidate - golden``. A negative drop is an improvement and always passes.
* ``max_relative_drop`` is ``drop / |golden|``. A relative change from a zero baseline is
  undefined (the reason TFMA's relative check breaks there), yet zero baselines are real: a
  ``max_error`` of 0 on a tiny label set, a ``balanced_accuracy`` of 0 on a broken golden. So at
  ``golden == 0`` the limit is applied as an absolute drop limit and the check's note says so,
  rather than silently passing or failing.
* ``min`` / ``max`` bound the candidate's value. They are the only limits for agreement metrics;
  a drop limit on one is a configuration error, reported before any model runs.
* A metric without a threshold is informational: it is reported and always passes.
* A candidate value of NaN where the golden was finite fails every limit set on it: NaN compares
  false against anything, and a gate must not let "the metric could not be computed" through.
"""
