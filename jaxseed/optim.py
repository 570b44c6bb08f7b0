"""The optimizer of every seed: AdamW with transformers' linear schedule, global-norm clipping, and a stop on
the first non-finite loss or gradient. Its hyperparameters are per-seed arrays (a sweep never recompiles)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxseed.models import lora as lora_lib


def lr_factor(step, warmup, total):
    """Linear warmup to 1, then linear decay to 0 at `total`: transformers' get_linear_schedule_with_warmup,
    written here because optax's schedules take their lengths as Python ints, which would be baked in."""
    step = jnp.asarray(step, jnp.float32)
    up = step / jnp.maximum(warmup, 1)
    down = (total - step) / jnp.maximum(total - warmup, 1)
    return jnp.clip(jnp.where(step < warmup, up, down), 0.0, 1.0)


def _decay_mask(params):
    # AdamW decays weight matrices and embeddings, not biases or LayerNorm scales (as transformers' Trainer).
    # LoRA's A and B are decayed too, as the Trainer does for every weight that is not a bias or a norm.
    return jax.tree_util.tree_map_with_path(
        lambda path, _: path[-1].key in ("kernel", "embedding") + lora_lib.ADAPTER_LEAVES, params)


class StopState(NamedTuple):
    inner: Any
    count: jax.Array  # steps taken
    diverged: jax.Array  # the step (1-based) at which loss or gradient norm became non-finite; 0: healthy


def stop_on_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """From the first step whose loss (`value`) or gradient norm is not finite, the seed's updates are zero and
    its optimizer state stays put: a diverged seed stops inside the compiled step, and the others never notice."""

    def init(params):
        return StopState(inner.init(params), jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, *, value=None, **extra):
        finite = jnp.isfinite(optax.tree.norm(grads)) & jnp.isfinite(jnp.asarray(1.0 if value is None else value))
        diverged = jnp.where((state.diverged == 0) & ~finite, state.count + 1, state.diverged)
        updates, inner_state = inner.update(grads, state.inner, params)
        ok = diverged == 0
        updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
        inner_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), inner_state, state.inner)
        return updates, StopState(inner_state, state.count + 1, diverged)

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(spec, hp: dict) -> optax.GradientTransformation:
    """spec: a train.StepSpec (clipping norm, Adam betas and epsilon); hp: per-seed arrays (learning_rate,
    weight_decay, warmup_steps, total_steps)."""
    schedule = lambda count: hp["learning_rate"] * lr_factor(count, hp["warmup_steps"], hp["total_steps"])
    return stop_on_nonfinite(optax.chain(
        optax.clip_by_global_norm(spec.max_grad_norm),
        optax.adamw(schedule, spec.adam_b1, spec.adam_b2, spec.adam_eps, weight_decay=hp["weight_decay"],
                    mask=_decay_mask)))
