"""`jaxseed export`: each exported seed loads in transformers (PyTorch) and gives the run's own dev logits."""

import shutil

import numpy as np
import pytest

from jaxseed import data as data_lib
from jaxseed.cli import main
from jaxseed.config import load_config
from jaxseed.run import run
from jaxseed.tasks import get_task

from conftest import minilm_dir


@pytest.fixture(scope="module")
def tiny_roberta_dir(tmp_path_factory):
    """A 2-layer random RoBERTa (pad id 0, so MiniLM's tokenizer fits it)."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=130, pad_token_id=0, initializer_range=0.2)
    out = tmp_path_factory.mktemp("tiny_roberta")
    RobertaModel(cfg, add_pooling_layer=False).save_pretrained(out)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / f, out / f)
    return out


@pytest.mark.parametrize("family, train_mode", [("bert", "full"), ("roberta", "full"), ("bert", "head")])
def test_exported_seeds_give_the_runs_logits_in_transformers(family, train_mode, tiny_bert_dir, tiny_roberta_dir,
                                                             glue_dir, tmp_path, capsys):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tiny_bert_dir if family == "bert" else tiny_roberta_dir
    cfg = load_config(None, dict(task="rte", model=str(model_dir), data_dir=str(glue_dir), max_steps=3, batch_size=8,
                                 eval_batch_size=16, max_length=64, max_train_examples=64, max_eval_examples=48,
                                 learning_rate=1e-3, seeds=3, train_mode=train_mode, output_dir=str(tmp_path / "run"),
                                 # head runs keep their checkpoints elsewhere: export finds them there
                                 checkpoint_dir=str(tmp_path / "ck") if train_mode == "head" else None))
    out = run(cfg, progress=False)
    assert (out / "checkpoints").exists() == (train_mode == "full")
    assert main(["export", str(out), "--seeds", "0,2", "-o", str(tmp_path / "hf")]) == 0
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["seed-0", "seed-2"]
    stored = np.load(out / "predictions.npz")["logits"]
    task = get_task("rte")
    enc = data_lib.encode(AutoTokenizer.from_pretrained(str(tmp_path / "hf" / "seed-0")),
                          data_lib.load_split(task, "validation", str(glue_dir)).head(48), 64)
    inputs = {"input_ids": torch.tensor(enc.ids_NxL, dtype=torch.long),
              "attention_mask": torch.tensor(enc.mask_NxL, dtype=torch.long)}
    if family == "bert":
        inputs["token_type_ids"] = torch.tensor(enc.type_ids_NxL, dtype=torch.long)
    for i in (0, 2):
        folder = tmp_path / "hf" / f"seed-{i}"
        model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
        assert model.config.id2label == {0: "entailment", 1: "not_entailment"}
        with torch.no_grad():
            logits = model(**inputs).logits.numpy()
        np.testing.assert_allclose(logits, stored[i], atol=1e-4, rtol=0)
    assert not np.allclose(stored[0], stored[2])  # distinct seeds, or the test could not tell them apart


def test_export_refuses_bad_seeds_and_runs_without_weights(tiny_bert_dir, glue_dir, tmp_path, capsys):
    cfg = load_config(None, dict(task="rte", model=str(tiny_bert_dir), data_dir=str(glue_dir), max_steps=2,
                                 batch_size=8, max_length=64, max_train_examples=32, max_eval_examples=16, seeds=2,
                                 keep_weights=False, output_dir=str(tmp_path / "run")))
    out = run(cfg, progress=False)
    assert not (out / "checkpoints").exists()
    assert main(["export", str(out), "--seeds", "5", "-o", str(tmp_path / "hf")]) == 2
    assert "--seeds: 5 is not a seed index of this run (0-1)" in capsys.readouterr().err
    assert main(["export", str(out), "-o", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert "no checkpoints" in err and "keep_weights" in err and err.count("\n") == 1
    assert not (tmp_path / "hf").exists()
