"""Task metrics per seed, and how much the seeds agree with each other (``from jaxseed import metrics``).

Modules: ``task`` (per-seed task metrics, METRICS, summaries), ``agreement`` (micro metrics and CON_k curves),
``record`` (ReCoRD, host side), ``_base`` (shared helpers).

Conventions
-----------
* ``pred_SxN`` / ``score_SxN``: a leading seed axis S over N evaluation examples. Class predictions are integers
  in ``[0, num_classes)``; regression scores are floats. ``label_N`` is shared by all seeds.
* Task metrics (``accuracy`` ... ``multirc_f1a``) are written for one run ``[N]`` and vmapped over every leading
  axis: ``[S, N] -> [S]``, ``[B, S, N] -> [B, S]``, and a 1-D ``[N]`` input gives a scalar.
  Micro (agreement) metrics need the seed axis; a 1-D input is read as S = 1.
* ``mask_N`` (optional, everywhere a metric averages over examples): bool, True = real example, so padded
  examples drop out. It may also be non-negative example *weights* (multiplicities): a weight of 2 counts an
  example twice, exactly as if it were duplicated. The Multi-Bootstrap in ``stats.py`` relies on this.
* Precision: everything is computed in JAX's default float: float32, careful enough to match scikit-learn and
  scipy within 1e-6 (counts stay integer-exact up to 2**24 examples, MCC works on normalised counts, correlation
  sums are blocked), or float64 under ``jax.enable_x64``; the tests check both at 1e-6. (Casting float64 scores
  to float32 can merge nearly equal values into ties; that input rounding is the caller's, not the metric's.)
* Class counts: every function that needs the number of classes takes ``num_classes``; left None it is inferred
  from concrete inputs (1 + the largest id: exact, as a class nobody has or predicts changes none of these
  metrics). Concrete ids outside [0, num_classes), or non-integer, raise ValueError; binary metrics (f1,
  multirc_f1a) refuse ids other than 0/1. Under jit nothing can be read, so num_classes must be passed.
* All array functions are pure jax.numpy (no Python control flow on values), vmap-able, and jitted (``_jit``)
  with the shape-setting arguments (num_classes, num_groups) static: an eager call compiles once per shape,
  masked or not, instead of dispatching op by op. ``summarize``, ``majority_baseline``, ``compute_metric`` and
  ``record_scores`` are host-side helpers.
"""

from jaxseed.metrics._base import _float, _jit, _weights  # noqa: F401  (stats.py builds on these)
from jaxseed.metrics.agreement import (  # noqa: F401
    churn_matrix, consistency, consistency_curve, consistency_k_examples, consistency_within, correct_consistency,
    correct_consistency_curve, correct_consistency_k_examples, ensemble_accuracy, fleiss_kappa, majority_label,
    pairwise_agreement, score_std, vote_counts, vote_entropy, vote_share)
from jaxseed.metrics.record import record_scores  # noqa: F401
from jaxseed.metrics.task import (  # noqa: F401
    METRICS, REGRESSION_METRICS, accuracy, compute_metric, f1, failed_runs, macro_f1, majority_baseline, mcc,
    multirc_em, multirc_f1a, pearson, spearman, summarize)

