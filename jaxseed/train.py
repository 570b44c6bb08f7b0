"""Training: one pure per-seed step, vmapped over a leading seed axis S and sharded over a `seed` mesh axis.

Shapes: S seeds in a chunk, N examples, B per-seed batch, L bucketed length, C labels.
A chunk's seeds are held in slots of `slot_size` seeds, each slot its own buffers, stepped by the same compiled
program: one slot of the whole chunk on accelerators (every matmul batched over seeds), one seed a device on CPU.
Trained parameters carry the seed axis; frozen ones (the backbone with train_mode "head") are one shared copy.
Hyperparameters users sweep (learning rate, weight decay) and the schedule lengths enter the compiled step as
per-seed arrays, so a new learning rate or a new number of steps never recompiles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from jaxseed import checkpoint as checkpoint_lib
from jaxseed import early_stop as early_stop_lib
from jaxseed.models import encoder as model_lib
from jaxseed import models, planner
from jaxseed.checkpoint import Preempted
from jaxseed.config import Config, ConfigError, Seeds, sweep_rows
from jaxseed.models import lora as lora_lib
from jaxseed.optim import lr_factor, make_optimizer
from jaxseed.distributed import is_primary, to_host
from jaxseed.data import Encoded

STREAM_INIT, STREAM_ORDER, STREAM_DROPOUT = 0, 1, 2  # folded into each seed so equal ints give independent streams


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything static about a step; hashable, so equal specs and shapes reuse one compiled program."""

    encoder: model_lib.EncoderConfig  # or a models.decoder.DecoderConfig
    num_labels: int
    batch_size: int
    dtype: str = "float32"
    remat: bool = False
    max_grad_norm: float = 1.0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8
    choices: int = 0  # multiple choice (COPA): batches hold C sequences an example, one score each (formulations.py)
    lora: lora_lib.LoraSpec | None = None  # train_mode lora: the adapters' shape and scale

    @property
    def head_width(self) -> int:
        return 1 if self.choices else self.num_labels

    def classifier(self):
        return models.classifier(self.encoder, self.head_width, jnp.dtype(self.dtype), self.remat, self.lora)


@dataclasses.dataclass
class Result:
    logits: dict  # split -> [S, N, C] float32
    loss_TxS: np.ndarray
    lr_TxS: np.ndarray
    history: list  # [(step, {split: logits [S, N, C]})] when eval_every is set
    trained: dict  # final trained parameters on the host, leading seed axis S
    compile_s: float
    train_s: float
    diverged_S: np.ndarray | None = None  # per seed: the step its loss or gradient norm became non-finite; 0: never
    early_stop: dict | None = None  # early_stop.train_kept's record; then the rows above are the kept seeds only
    eval_s: float = 0.0  # the final evaluation of the dev splits


def seed_keys(seeds_S, stream: int) -> jax.Array:
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), stream))(jnp.asarray(seeds_S, jnp.uint32))


def _logits(spec: StepSpec, params, batch, dropout_key=None):
    deterministic = dropout_key is None
    flat = lambda x: x.reshape(-1, x.shape[-1])  # multiple choice: [B, C, L] -> [B*C, L], scored one by one
    out = spec.classifier().apply({"params": params}, flat(batch["ids"]), flat(batch["mask"]), flat(batch["type_ids"]),
                                  deterministic=deterministic, rngs=None if deterministic else {"dropout": dropout_key})
    return out.reshape(-1, spec.choices) if spec.choices else out  # [B, C]: softmax across the choices


def _loss(spec: StepSpec, logits_BxC, label_B):
    if spec.num_labels == 1:  # regression, as transformers: MSE on the single output
        return jnp.mean((logits_BxC[:, 0] - label_B) ** 2)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, label_B).mean()


def _seed_step(spec: StepSpec, trained, opt_state, perm_N, hp, dropout_key, frozen, data, step):
    """One optimizer step of one seed. perm_N is this seed's data order for the current epoch."""
    n = data["ids"].shape[0]
    pos = (step % (n // spec.batch_size)) * spec.batch_size  # the last partial batch of an epoch is dropped
    idx_B = jax.lax.dynamic_slice_in_dim(perm_N, pos, spec.batch_size)
    batch = jax.tree.map(lambda x: x[idx_B], data)  # gathered on the device: no per-step host work

    def loss_fn(trained):
        logits = _logits(spec, lora_lib.merge(frozen, trained), batch, jax.random.fold_in(dropout_key, step))
        return _loss(spec, logits, batch["label"])

    loss, grads = jax.value_and_grad(loss_fn)(trained)
    updates, opt_state = make_optimizer(spec, hp).update(grads, opt_state, trained, value=loss)
    return optax.apply_updates(trained, updates), opt_state, loss


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(1, 2))
def train_step(spec, trained_S, opt_S, perm_SxN, hp_S, dropout_keys_S, frozen, data, step):
    one = lambda *a: _seed_step(spec, *a, frozen, data, step)
    return jax.vmap(one)(trained_S, opt_S, perm_SxN, hp_S, dropout_keys_S)


def step_slots(spec, slots: list, frozen, data, step: int) -> None:
    """One optimizer step of every slot (dicts of trained, opt, perm, hp, drop; loss is set): the same compiled
    program for each, its donated state updated in place. With several slots each step waits for the one
    before: XLA:CPU otherwise runs the queued programs at the same time, and two steps sharing the cores take
    longer than one after the other (MiniLM, S = 8, L = 64: 0.72 against 0.68 s a seed-step)."""
    step = jnp.int32(step)
    for sl in slots:
        sl["trained"], sl["opt"], sl["loss"] = train_step(spec, sl["trained"], sl["opt"], sl["perm"], sl["hp"],
                                                          sl["drop"], frozen, data, step)
        if len(slots) > 1:
            sl["loss"].block_until_ready()


@functools.partial(jax.jit, static_argnums=(0, 1))
def evaluate(spec, eval_batch, trained_S, frozen, data):
    """Logits [S, N, C] for N a multiple of eval_batch; batches run in a lax.map so the shape compiles once."""
    batches = jax.tree.map(lambda x: x.reshape(-1, eval_batch, *x.shape[1:]), data)

    def one_seed(trained):
        params = lora_lib.merge(frozen, trained)
        out = jax.lax.map(lambda b: _logits(spec, params, b), batches)
        return out.reshape(-1, spec.num_labels)

    return jax.vmap(one_seed)(trained_S)


@functools.partial(jax.jit, static_argnums=2)
def epoch_permutations(order_keys_S, epoch, n):
    return jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(k, epoch), n))(order_keys_S)


@functools.partial(jax.jit, static_argnums=(0, 1))
def init_heads(encoder, num_labels, init_keys_S, pooler):
    return jax.vmap(lambda k: models.init_head(k, encoder, num_labels, pooler))(init_keys_S)


@functools.partial(jax.jit, static_argnums=(0, 1))
def init_adapters(encoder, lora, init_keys_S):
    """Fresh LoRA adapters per seed, from the init stream (folded apart from the head's draw)."""
    shapes = models.backbone_shapes(encoder, lora)
    return jax.vmap(lambda k: lora_lib.init_adapters(jax.random.fold_in(k, 1), shapes))(init_keys_S)


def step_cache_size() -> int:
    """How many programs the train step has compiled in this process (one per static spec and shape)."""
    return train_step._cache_size()


def seed_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("seed",))


def slot_size(seed_loop: bool | None, ndev: int, chunk: int) -> int:
    """Seeds a call of the step trains: the whole chunk, vmapped, on accelerators; one seed a device where seeds
    are looped (planner.loops_seeds: CPU by default). XLA:CPU runs batched matmuls slower than the same matmuls
    one at a time, and looping inside the program (lax.map) copies every seed's parameters and optimizer state
    in and out of the stacked arrays each step; separate buffers per slot, donated to the step, are updated in
    place, so a looped seed costs what a lone seed does."""
    return ndev if planner.loops_seeds(seed_loop, jax.default_backend()) else chunk


def split_slots(tree_S, size: int, sharding) -> list:
    """[S, ...] arrays -> S / size slots of [size, ...], each its own buffers, spread over the seed mesh."""
    n = jax.tree.leaves(tree_S)[0].shape[0]
    if size == n:
        return [tree_S]
    return _cut(tree_S, size, sharding)


def join_slots(slots: list, sharding):
    """The inverse of split_slots: one [S, ...] array a leaf (checkpoints and results keep this layout)."""
    if len(slots) == 1:
        return slots[0]
    return _join(slots, sharding)


# jitted (not device_put) so they also work on arrays that span hosts
@functools.partial(jax.jit, static_argnums=(1, 2))
def _cut(tree_S, size, sharding):
    n = jax.tree.leaves(tree_S)[0].shape[0]
    return [jax.lax.with_sharding_constraint(jax.tree.map(lambda x: x[i:i + size], tree_S), sharding)
            for i in range(0, n, size)]


@functools.partial(jax.jit, static_argnums=1)
def _join(slots, sharding):
    return jax.lax.with_sharding_constraint(jax.tree.map(lambda *xs: jnp.concatenate(xs), *slots), sharding)


def num_steps(cfg: Config, num_train: int) -> tuple[int, int]:
    """(total steps, warmup steps), counted as transformers' Trainer does, with the last partial batch dropped."""
    steps_per_epoch = num_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {num_train} training examples")
    total = cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))
    if isinstance(cfg.warmup_ratio, tuple):  # a sweep: one warmup per listed ratio
        return total, [math.ceil(r * total) for r in cfg.warmup_ratio]
    return total, math.ceil(cfg.warmup_ratio * total)


def eval_batch(n: int, limit: int) -> int:
    """The batch that evaluates n examples in as few batches as `limit` allows, split evenly, so that fewer than
    one row a batch is padding (408 examples, limit 64: 7 batches of 59 rather than 7 of 64, 40 rows padding)."""
    n = max(n, 1)
    return -(-n // -(-n // limit))


def _to_device(enc: Encoded, sharding, pad_to: int = 1) -> dict:
    n = enc.ids_NxL.shape[0]
    pad = (-n) % pad_to
    arrays = {"ids": enc.ids_NxL, "mask": enc.mask_NxL, "type_ids": enc.type_ids_NxL, "label": enc.label_N}
    arrays = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in arrays.items()}
    return jax.device_put(arrays, sharding)


def make_train(cfg: Config, task, pretrained: model_lib.Pretrained, train_enc: Encoded, dev_encs: dict,
               progress: bool = True, checkpoints: bool = False, early=None):
    """Returns train(seeds) -> Result: the whole run for any set of seeds, in chunks of cfg.seed_chunk.
    early: an early_stop.Plan, to start every seed and train only the best to the end (early_stop.py).

    With swept hyperparameters (lists in the config) the rows are config.sweep_rows: the grid times the seeds,
    all in the same compiled step, since the values enter it as per-row arrays. With checkpoints, each chunk
    saves to (and resumes from) the run's checkpoint folder (checkpoint.py)."""
    encoder = pretrained.config
    if cfg.dropout is not None:
        encoder = encoder.with_dropout(cfg.dropout)
    lora = models.lora_from_config(cfg, encoder)
    mesh = seed_mesh()
    ndev = mesh.devices.size
    choices = task.num_labels if task.formulation == "choice" else 0
    spec = StepSpec(encoder, task.num_labels, cfg.batch_size, cfg.dtype, cfg.remat, cfg.max_grad_norm,
                    cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon, choices=choices, lora=lora)
    per_seed, shared = NamedSharding(mesh, P("seed")), NamedSharding(mesh, P())
    train_data = _to_device(train_enc, shared)
    batch_of = lambda e: eval_batch(len(e.label_N), cfg.eval_batch_size)
    dev_data = {s: _to_device(e, shared, batch_of(e)) for s, e in dev_encs.items()}
    held_data = None if early is None else _to_device(early.held, shared, batch_of(early.held))
    n_train = train_enc.ids_NxL.shape[0]
    total, _ = num_steps(cfg, n_train)
    steps_per_epoch = n_train // cfg.batch_size
    # head and lora: ONE copy of the pretrained backbone, read by every seed (no seed axis)
    frozen = {"backbone": jax.device_put(pretrained.backbone, shared)} if cfg.train_mode != "full" else {}
    pooler = None if pretrained.pooler is None else jax.device_put(pretrained.pooler, shared)

    def evaluate_slots(slots, data, n_seeds, n):  # logits [n_seeds, n, C] on the host
        out = []
        for sl in slots:  # one at a time, as step_slots
            out.append(evaluate(spec, eval_batch(n, cfg.eval_batch_size), sl["trained"], frozen, data))
            if len(slots) > 1:
                out[-1].block_until_ready()
        return to_host(jnp.concatenate(out) if len(out) > 1 else out[0])[:n_seeds, :n]

    def evaluate_all(slots, n_seeds):
        return {s: evaluate_slots(slots, d, n_seeds, len(dev_encs[s].label_N)) for s, d in dev_data.items()}

    eval_steps = [t for t in range(1, total) if cfg.eval_every and t % cfg.eval_every == 0]

    def pack(slots, losses, history, chunk_size, n_real):
        """A chunk's checkpoint state: everything the remaining steps and the results depend on, in one [S, ...]
        layout whatever the slots (a transient copy of the state while it is saved)."""
        trained, opt = (join_slots([sl[key] for sl in slots], per_seed) for key in ("trained", "opt"))
        loss_TxS = np.zeros((total, chunk_size), np.float32)
        if losses:
            loss_TxS[:len(losses)] = loss_rows(losses)
        state = {"trained": trained, "opt": opt, "loss": jax.device_put(loss_TxS, shared)}
        if eval_steps:  # fixed shapes, zero until evaluated, so a fresh state describes any checkpoint's
            n_dev = {s: len(e.label_N) for s, e in dev_encs.items()}
            evals = {s: np.zeros((len(eval_steps), n_real, n_dev[s], spec.num_labels), np.float32) for s in dev_encs}
            for i, (_, lg) in enumerate(history):
                for s in dev_encs:
                    evals[s][i] = lg[s]
            state["evals"] = jax.device_put(evals, shared)
        return state

    def loss_rows(losses):  # [T, S] on the host; a step's entry is a row (restored) or its slots' losses
        rows = [x if isinstance(x, (np.ndarray, jax.Array)) else jnp.concatenate(x) for x in losses]
        return np.array(to_host(jnp.stack(rows)))  # writable: diverged seeds are masked in place

    def slots_to_host(slots, key, n_real):  # one slot at a time: no joined [S, ...] copy on the device
        parts = [jax.tree.map(to_host, sl[key]) for sl in slots]
        return jax.tree.map(lambda *xs: np.concatenate(xs)[:n_real], *parts)

    def init_trained(init_k, n):
        trained = {"head": init_heads(encoder, spec.head_width, init_k, pooler)}
        if cfg.train_mode == "full":  # every seed fine-tunes its own copy of the pretrained weights
            trained["backbone"] = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), pretrained.backbone)
        if cfg.train_mode == "lora":  # each seed's adapters; the base stays in `frozen`
            trained["backbone"] = init_adapters(encoder, lora, init_k)
        return jax.device_put(trained, per_seed)

    def train_chunk(seeds: Seeds, values: dict, chunk_size: int, bar_desc: str, ck=None, stop=None, until=None,
                    state=None):
        """until: stop at that step and return the state and held-out logits (early stop's phase 1); state:
        go on from it (phase 2: {trained, opt, loss, history, step}, padded to chunk_size)."""
        n_real = len(seeds)
        fill = lambda v: np.asarray(list(v) + [v[-1]] * (chunk_size - n_real))  # padded seeds are dropped at the end
        init_k, order_k, drop_k = (jax.device_put(seed_keys(fill(v), st), per_seed) for v, st in
                                   ((seeds.init, STREAM_INIT), (seeds.order, STREAM_ORDER), (seeds.dropout, STREAM_DROPOUT)))
        hp = jax.device_put(_hp({k: fill(v) for k, v in values.items()}), per_seed)
        k = slot_size(cfg.seed_loop, ndev, chunk_size)
        slots = [{"init": i, "order": o, "drop": d, "hp": h} for i, o, d, h in
                 zip(*(split_slots(x, k, per_seed) for x in (init_k, order_k, drop_k, hp)))]
        if state is None:
            for sl in slots:  # each slot's state is built in its own buffers: no stacked copy to split
                sl["trained"] = init_trained(sl["init"], k)
                sl["opt"] = init_opt(sl["trained"])
            losses, history, start = [], [], 0
        else:
            for key in ("trained", "opt"):
                for sl, part in zip(slots, split_slots(jax.device_put(state[key], per_seed), k, per_seed)):
                    sl[key] = part
            losses, history, start = list(state["loss"]), list(state["history"]), state["step"]
        end = total if until is None else until
        if ck is not None and ck.latest() is not None:  # resume: the arrays of the latest complete checkpoint
            start, state = ck.restore(pack(slots, losses, history, chunk_size, n_real))
            for key in ("trained", "opt"):
                for sl, part in zip(slots, split_slots(state[key], k, per_seed)):
                    sl[key] = part
            losses = list(to_host(state["loss"])[:start])
            evals = {s: to_host(v) for s, v in state.get("evals", {}).items()}  # one gather a split, not one per eval
            history = [(e, {s: evals[s][i] for s in dev_encs}) for i, e in enumerate(eval_steps) if e <= start]
        meta = {"seeds": {"init": list(seeds.init), "order": list(seeds.order), "dropout": list(seeds.dropout)}}
        t0, compile_s = time.perf_counter(), 0.0
        bar = tqdm(range(start, end), desc=bar_desc, unit="step", disable=not progress or not is_primary(),
                   initial=start, total=end)
        for t in bar:
            if ck is not None:
                ck.kill_before_step(t)
            if t % steps_per_epoch == 0 or t == start:
                for sl in slots:
                    sl["perm"] = epoch_permutations(sl["order"], t // steps_per_epoch, n_train)
            step_slots(spec, slots, frozen, train_data, t)
            losses.append([sl["loss"] for sl in slots])  # joined only when logged or saved
            if t == start:
                jax.block_until_ready(losses[-1])
                compile_s = time.perf_counter() - t0  # the first step holds compilation
            if (t + 1) % cfg.log_every == 0 or t + 1 == end:
                l = loss_rows(losses[-1:])[0, :n_real]  # every process: a collective across hosts
                bar.set_postfix(loss=f"{l.mean():.4f}", spread=f"{l.min():.3f}-{l.max():.3f}")
            if cfg.eval_every and (t + 1) % cfg.eval_every == 0 and t + 1 < total:
                history.append((t + 1, evaluate_all(slots, n_real)))
            stopping = stop is not None and stop.requested is not None and t + 1 < end
            if ck is not None and (ck.due(t + 1) or t + 1 == end or stopping):
                ck.save(t + 1, pack(slots, losses, history, chunk_size, n_real), meta)
            if stopping:
                ck.finish()
                raise Preempted(f"stopped by {stop.name} at step {t + 1} of {total} ({bar_desc}); "
                                f"checkpoint written to {ck.dir}")
        bar.close()
        jax.block_until_ready([sl.get("loss") for sl in slots])  # the steps still in flight count as training
        loss_TxS = loss_rows(losses)[:, :n_real] if losses else np.zeros((0, n_real), np.float32)
        train_s = time.perf_counter() - t0 - compile_s
        if until is not None:  # the state at `until`, and every seed's logits on the held-out examples
            held = evaluate_slots(slots, held_data, n_real, len(early.held.label_N))
            return ({key: slots_to_host(slots, key, n_real) for key in ("trained", "opt")}, loss_TxS, history,
                    held, compile_s, train_s)
        t_eval = time.perf_counter()
        logits = evaluate_all(slots, n_real)
        eval_s = time.perf_counter() - t_eval
        diverged_S = np.concatenate([to_host(sl["opt"].diverged) for sl in slots])[:n_real]
        for s, d in enumerate(diverged_S):  # a stopped seed's later losses are of frozen, broken weights: not shown
            if d:
                loss_TxS[d:, s] = np.nan
        return logits, loss_TxS, history, compile_s, train_s, slots_to_host(slots, "trained", n_real), diverged_S, eval_s

    def _hp(values):  # per-row arrays from per-row values (config.sweep_rows)
        n = len(values["learning_rate"])
        return {"learning_rate": np.asarray(values["learning_rate"], np.float32),
                "weight_decay": np.asarray(values["weight_decay"], np.float32),
                "warmup_steps": np.asarray([math.ceil(r * total) for r in values["warmup_ratio"]], np.int32),
                "total_steps": np.full(n, total, np.int32)}

    one_row = {"learning_rate": [0.0], "weight_decay": [0.0], "warmup_ratio": [0.0]}
    init_opt = jax.jit(jax.vmap(make_optimizer(spec, _hp(one_row)).init), out_shardings=per_seed)  # once

    def train(seeds: Seeds, hp: dict | None = None) -> Result:
        """hp: optional per-seed values [len(seeds)] of the swept hyperparameters (e.g. learning_rate), through
        the Python API; they override the config's for those rows."""
        seeds, values = sweep_rows(cfg, seeds)
        values |= {k: list(np.asarray(v, np.float64)) for k, v in (hp or {}).items()}
        # Multiple choice runs B*C sequences a step: the planner sees that batch.
        plan_cfg = dataclasses.replace(cfg, batch_size=cfg.batch_size * max(spec.choices, 1))
        plan = lambda: planner.plan_for(plan_cfg, encoder, task.num_labels, len(seeds), train_enc.length)
        # seed_chunk null: as many seeds a chunk as fit in free memory; a resumed run keeps its first chunk size
        size = plan() if not checkpoints else checkpoint_lib.chunk_size(cfg, plan)
        size = -(-size // ndev) * ndev  # pad each chunk to a multiple of the devices
        record = None
        with checkpoint_lib.StopSignals() if checkpoints else contextlib.nullcontext() as stop:
            def run_chunk(k, rows, chunk_size, prefix="chunk", what="seeds", **kw):  # rows: indices into seeds
                chunk = Seeds(*(tuple(s[i] for i in rows) for s in (seeds.init, seeds.order, seeds.dropout)))
                ck = checkpoint_lib.ChunkCheckpoints(cfg, k, total, prefix) if checkpoints else None
                try:
                    out = train_chunk(chunk, {n: [v[i] for i in rows] for n, v in values.items()}, chunk_size,
                                      f"{what} {rows[0]}-{rows[-1]}", ck, stop, **kw)
                    if ck is not None:
                        ck.finish(final_only=True)
                    return out
                except jax.errors.JaxRuntimeError as e:  # out of memory: one line naming a seed_chunk that fits
                    if "RESOURCE_EXHAUSTED" not in str(e):
                        raise
                    if ck is not None and k == 0 and prefix == "chunk" and ck.latest() is None:  # nothing to resume:
                        ck.finish()                                  # a plain re-run with the suggested seed_chunk works
                        checkpoint_lib.remove(cfg)
                    raise ConfigError(planner.oom_message(plan_cfg, encoder, task.num_labels, chunk_size,
                                                          train_enc.length, ndev)) from None

            chunks = [list(range(start, min(start + size, len(seeds)))) for start in range(0, len(seeds), size)]
            if early is None:
                parts = [run_chunk(k, rows, size) for k, rows in enumerate(chunks)]
            else:  # every seed to step T, then the best to the end, fewer a program
                parts, record = early_stop_lib.train_kept(early, run_chunk, chunks, size, ndev, total)
                values = {n: [v[i] for i in record["kept_rows"]] for n, v in values.items()}  # the rows trained on
        logits = {s: np.concatenate([p[0][s] for p in parts]) for s in dev_encs}
        history = [(step, {s: np.concatenate([p[2][i][1][s] for p in parts]) for s in dev_encs})
                   for i, (step, _) in enumerate(parts[0][2])]
        hp_rows = _hp(values)  # the schedule of every row, in one program rather than one per op
        lr = hp_rows["learning_rate"] * np.asarray(jax.jit(lr_factor)(jnp.arange(total)[:, None],
                                                                       hp_rows["warmup_steps"], total))
        loss = np.concatenate([p[1] for p in parts], axis=1)
        trained = jax.tree.map(lambda *xs: np.concatenate(xs), *[p[5] for p in parts])
        phase1 = (0.0, 0.0) if record is None else (record["compile_s"], record["train_s"])
        return Result(logits, loss, lr, history, trained, phase1[0] + sum(p[3] for p in parts),
                      phase1[1] + sum(p[4] for p in parts), np.concatenate([p[6] for p in parts]), record,
                      sum(p[7] for p in parts))

    return train
