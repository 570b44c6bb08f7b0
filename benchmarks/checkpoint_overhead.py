"""Checkpoint overhead: the time one save takes against one training step (all-MiniLM-L6-v2, full fine-tuning).

    PYTHONPATH=. python benchmarks/checkpoint_overhead.py [SEEDS] [STEPS]

Saves every 2 steps; prints the step time (steps without a save), the time save() blocks the loop (device to host
copy; the write goes on in the background) and the whole write (save() then wait_until_finished()).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import GLUE, minilm_dir  # noqa: E402

from jaxseed import checkpoint as ck  # noqa: E402
from jaxseed import data as data_lib, model as model_lib, train as train_lib  # noqa: E402
from jaxseed.config import load_config, resolve_seeds  # noqa: E402
from jaxseed.tasks import get_task  # noqa: E402

seeds, steps = (int(a) for a in (sys.argv[1:] + ["2", "8"])[:2])
blocking, whole, step_ends = [], [], []
orig_save = ck.ChunkCheckpoints.save


def timed_save(self, step, state, meta):
    t = time.perf_counter()
    orig_save(self, step, state, meta)
    blocking.append(time.perf_counter() - t)
    self.mngr.wait_until_finished()
    whole.append(time.perf_counter() - t)


ck.ChunkCheckpoints.save = timed_save
with tempfile.TemporaryDirectory() as tmp:
    cfg = load_config(None, dict(task="rte", model=str(minilm_dir()), data_dir=str(GLUE), seeds=seeds,
                                 max_steps=steps, batch_size=16, max_length=128, max_train_examples=500,
                                 max_eval_examples=64, checkpoint_every=2, output_dir=tmp))
    task = get_task(cfg.task)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model)
    tr = data_lib.encode(tok, data_lib.load_split(task, "train", GLUE).head(500), 128)
    dev = {"validation": data_lib.encode(tok, data_lib.load_split(task, "validation", GLUE).head(64), 128)}
    res = train_lib.make_train(cfg, task, model_lib.load_pretrained(cfg.model), tr, dev, progress=False,
                               checkpoints=True)(resolve_seeds(seeds))
    size = sum(f.stat().st_size for f in Path(tmp, "checkpoints").rglob("*") if f.is_file())
step_s = (res.train_s - sum(whole)) / (steps - 1)  # train_s: steps after the first (compile), and the saves
print(f"S={seeds}, L={tr.length}, B=16: step {step_s:.2f} s; save blocks {np.mean(blocking):.2f} s "
      f"(min {min(blocking):.2f}), whole write {np.mean(whole):.2f} s (min {min(whole):.2f}); "
      f"final checkpoint {size / 1e9:.2f} GB")
