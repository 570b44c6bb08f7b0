"""Shared helpers of the metrics: dtype, weights, blocked sums, the jit wrapper and its class-count checks."""

from __future__ import annotations

import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np


def _float():
    """The default float dtype (float32, float64 under x64)."""
    return jnp.result_type(float)


def _weights(mask_N, n):
    """Example weights from an optional bool mask or weight vector."""
    if mask_N is None:
        return jnp.ones((n,), _float())
    return jnp.asarray(mask_N).astype(_float())


def _sum_n(x_N):
    """Sum over the last axis in blocks of 128: float32 rounding then grows with ~N/128 + 128 additions, not N
    (enough to keep Pearson/Spearman on 10⁴ examples within 1e-6 of float64)."""
    pad = (-x_N.shape[-1]) % 128
    x_N = jnp.pad(x_N, [(0, 0)] * (x_N.ndim - 1) + [(0, pad)])
    return jnp.sum(jnp.sum(x_N.reshape(x_N.shape[:-1] + (-1, 128)), axis=-1), axis=-1)


def _wmean(x_N, w_N):
    """Weighted mean over the example axis; all-masked gives NaN (0/0)."""
    return _sum_n(x_N * w_N) / _sum_n(w_N)


def _as_ks(ks):
    """ks as an array: any int sequence or range on the host, or an array (also traced) as is."""
    return ks if isinstance(ks, jax.Array) else np.asarray(ks, dtype=np.int32)


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _class_count(name, arguments, given, groups=False):
    """The class (or group) count for a call: checked against concrete inputs, inferred from them when None.

    Inputs named in CLASS_INPUTS must hold ids in [0, C) on the real examples (weight > 0); padded slots may hold
    anything. Inferred C = 1 + the largest id (at least 2 for classes): exact for every metric here, since a class
    nobody has or predicts adds nothing. Traced inputs cannot be read, so there C must be given.
    """
    keys = ("group_N",) if groups else [k for k in CLASS_INPUTS if k in arguments]
    what = "num_groups" if groups else "num_classes"
    xs = [arguments[k] for k in keys if arguments.get(k) is not None]
    if any(_is_traced(x) for x in xs) or _is_traced(arguments.get("mask_N")):
        if given is None:
            raise ValueError(f"{name}: pass {what} (it cannot be inferred from traced inputs under jit or vmap)")
        return given
    mask = arguments.get("mask_N")
    real = None if mask is None else np.asarray(mask) > 0
    lo, hi = math.inf, -math.inf
    for k, x in zip(keys, xs):
        v = np.asarray(x)
        v = v[..., real] if real is not None and v.shape[-1:] == real.shape else v
        if v.size == 0:
            continue
        if not np.all(v == np.round(v)):
            raise ValueError(f"{name}: {k} must hold integer ids, got non-integer values")
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if given is None and lo >= 0:
        return max(0 if groups else 2, int(hi) + 1 if hi > -math.inf else 0)
    if lo < 0 or hi >= given:
        bound = f"[0, {given}) for {what}={given}" if given is not None else "[0, ∞)"
        raise ValueError(f"{name}: ids must lie in {bound}, got values from {lo:g} to {hi:g}")
    return given


CLASS_INPUTS = ("pred_SxN", "label_N")


def _jit(*static, n_from=None, binary=False):
    """jax.jit with ``static`` argnames, behind a thin call normaliser so that equivalent calls share one compile.

    Arguments are bound by name with defaults filled in (positional, keyword and default calls hit the same
    cache entry), ``mask_N=None`` becomes all-ones weights sized by the last axis of argument ``n_from`` (default:
    the first), so masked and unmasked calls share the compiled code, and ``ks`` becomes an array. A
    ``num_classes`` (``num_groups``) argument is checked against concrete inputs or inferred from them when None
    (``_class_count``); ``binary`` metrics check their concrete inputs are 0/1. The normaliser is plain jnp, so
    the functions still nest in jit and vmap.
    """
    def deco(fn):
        sig = inspect.signature(fn)
        jitted = jax.jit(fn, static_argnames=static)
        sized_by = n_from or next(iter(sig.parameters))

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            if "num_classes" in arguments:
                arguments["num_classes"] = _class_count(fn.__name__, arguments, arguments["num_classes"])
            elif binary:
                _class_count(fn.__name__, arguments, 2)
            if "num_groups" in arguments:
                arguments["num_groups"] = _class_count(fn.__name__, arguments, arguments["num_groups"], groups=True)
            if "mask_N" in arguments:
                n = jnp.shape(arguments[sized_by])[-1]
                arguments["mask_N"] = _weights(arguments["mask_N"], n)
            if "ks" in arguments:
                arguments["ks"] = _as_ks(arguments["ks"])
            return jitted(**arguments)

        return call

    return deco


def _over_runs(fn, x):
    """Apply a one-run function [N] -> scalar over every leading axis of x."""
    for _ in range(jnp.ndim(x) - 1):
        fn = jax.vmap(fn)
    return fn(x)


def _seeds(pred_SxN):
    """Micro metrics need a seed axis: read a 1-D input as S = 1."""
    return jnp.atleast_2d(jnp.asarray(pred_SxN))


def _safe_div(num, den):
    """num / den, 0 where den == 0 (scikit-learn's zero_division=0)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)
