"""One seed of a GLUE fine-tuning run with the Hugging Face Trainer, as transformers' examples/run_glue.py does
it: load the data, tokenize with `datasets.map`, train, evaluate, write the predictions, save the model. The
loop researchers run today starts this once per seed, each a fresh process (benchmarks/bench_study.py).

    python benchmarks/hf_glue.py --model DIR --data-dir ../shared/data/glue --task mrpc --seed 0 --max-steps 100 \
        --max-length 64 --out runs/hf-mrpc/seed-0

Prints one JSON line: the wall time of each phase, from the process start (time.time() in the parent,
--t0) to the predictions on disk.
"""

from __future__ import annotations

import time

T_MAIN = time.time()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

# The same files and columns jaxseed reads (jaxseed/tasks/glue.py): GLUE TSVs with bare quotes inside fields.
TASKS = {"mrpc": ("MRPC", ("#1 String", "#2 String"), "Quality"),
         "rte": ("RTE", ("sentence1", "sentence2"), "label")}
RTE_LABELS = {"entailment": 0, "not_entailment": 1}


def read_tsv(path: Path, text_cols, label_col) -> dict:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    col = {name: i for i, name in enumerate(rows[0])}
    need = max(col[c] for c in (*text_cols, label_col)) + 1
    rows = [r for r in rows[1:] if r and len(r) >= need]
    label = [r[col[label_col]].strip() for r in rows]
    return {"sentence1": [r[col[text_cols[0]]] for r in rows], "sentence2": [r[col[text_cols[1]]] for r in rows],
            "label": [RTE_LABELS[x] if x in RTE_LABELS else int(x) for x in label]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--task", default="mrpc", choices=sorted(TASKS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--max-train", type=int, default=None, help="the first N training examples only")
    p.add_argument("--out", required=True)
    p.add_argument("--t0", type=float, default=None, help="time.time() when the parent started this process")
    a = p.parse_args()
    t0 = a.t0 or T_MAIN
    marks = {"python_start": T_MAIN - t0}

    import datasets
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    marks["imports"] = time.time() - t0
    folder, text_cols, label_col = TASKS[a.task]
    raw = {s: datasets.Dataset.from_dict(read_tsv(Path(a.data_dir) / folder / f"{s}.tsv", text_cols, label_col))
           for s in ("train", "dev")}
    if a.max_train:
        raw["train"] = raw["train"].select(range(a.max_train))
    tokenizer = transformers.AutoTokenizer.from_pretrained(a.model)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=2)
    marks["load"] = time.time() - t0

    def tok(batch):  # run_glue with --pad_to_max_length: every batch the same shape
        return tokenizer(batch["sentence1"], batch["sentence2"], padding="max_length", max_length=a.max_length,
                         truncation=True)

    data = {s: d.map(tok, batched=True, remove_columns=["sentence1", "sentence2"]) for s, d in raw.items()}
    marks["tokenize"] = time.time() - t0
    args = transformers.TrainingArguments(
        output_dir=a.out, seed=a.seed, max_steps=a.max_steps, per_device_train_batch_size=a.batch_size,
        per_device_eval_batch_size=a.eval_batch_size, learning_rate=a.learning_rate, weight_decay=0.01,
        warmup_steps=math.ceil(0.1 * a.max_steps), max_grad_norm=1.0,  # jaxseed: ceil(warmup_ratio * steps)
        lr_scheduler_type="linear", save_strategy="no", report_to=[],
        logging_steps=10, disable_tqdm=True, use_cpu=True)  # max_steps within one epoch: no partial batch
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data["train"], processing_class=tokenizer)
    marks["trainer_init"] = time.time() - t0
    trainer.train()
    marks["train"] = time.time() - t0
    out = trainer.predict(data["dev"])
    marks["eval"] = time.time() - t0
    Path(a.out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(a.out) / "predictions.npz", pred=out.predictions.argmax(-1), label=np.asarray(data["dev"]["label"]),
             logits=out.predictions)
    trainer.save_model()  # run_glue saves the fine-tuned model
    marks["write"] = time.time() - t0
    print("PHASES " + json.dumps(marks), flush=True)


if __name__ == "__main__":
    main()
