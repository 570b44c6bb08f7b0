"""LoRA (jaxseed.models.lora) against peft + torch: logits and gradients of every A, B and the head."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import peft
import pytest
import torch
import transformers

from jaxseed.models import encoder as encoder_lib
from jaxseed import models
from jaxseed.models import lora as L
from jaxseed.models.decoder_params import hf_name as decoder_hf_name

from test_decoder import load, tiny_batch, tiny_decoder

torch.set_num_threads(2)


def with_peft(model, targets, r=4, alpha=8, rslora=False, seed=1):
    """peft SEQ_CLS LoRA with B set to non-zero random values, so the adapters change the logits."""
    cfg = peft.LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                          use_rslora=rslora)
    pm = peft.get_peft_model(model, cfg)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    return pm.eval()  # peft leaves its wrappers (the head copy) in training mode: no dropout in the oracle


def torch_loss_and_grads(pm, ids, mask, labels):
    pm.zero_grad()
    out = pm(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), labels=torch.tensor(labels))
    out.loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in pm.named_parameters() if p.requires_grad}
    return out.logits.detach().numpy(), float(out.loss), grads


def adapters_from_peft(pm, shapes, hf_name, prefix):
    """Our adapter tree filled from peft's lora_A / lora_B weights (transposed to [in, r] / [r, out])."""
    state = {n: p.detach().numpy() for n, p in pm.named_parameters()}

    def pick(path, _):
        keys = tuple(p.key for p in path)
        module = hf_name(keys[:-1] + ("kernel",)).removesuffix(".weight")
        w = state[f"{prefix}{module}.lora_{'A' if keys[-1] == 'lora_a' else 'B'}.default.weight"]
        return jnp.asarray(w.T)

    return jax.tree_util.tree_map_with_path(pick, L.split(shapes)[1])


def loss_fn(module, frozen, labels):
    def f(trained, ids, mask):
        logits = module.apply({"params": L.merge(frozen, trained)}, ids, mask, deterministic=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits
    return f


def assert_rel_close(got, want, tol=1e-4, what=""):
    got, want = np.asarray(got), np.asarray(want)
    rel = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12)
    assert rel < tol, f"{what}: relative error {rel:.2e}"
    np.testing.assert_allclose(got, want, atol=tol * np.abs(want).max(), rtol=0, err_msg=what)


@pytest.mark.parametrize("family,targets,rslora", [
    ("llama", ["q_proj", "v_proj"], False),
    ("qwen2", ["q_proj", "k_proj", "v_proj", "o_proj"], True),
    ("qwen3", ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"], False),
])
def test_decoder_lora_logits_and_grads_match_peft(family, targets, rslora, tmp_path):
    model = tiny_decoder(family)
    cfg, params = load(model, tmp_path)
    spec = models.lora_spec(cfg, r=4, alpha=8, target_modules=targets, rslora=rslora)
    assert spec.scale == (8 / 2 if rslora else 8 / 4)
    pm = with_peft(model, targets, rslora=rslora)
    ids, mask = tiny_batch()
    labels = np.array([0, 2, 1, 2])
    want_logits, want_loss, tg = torch_loss_and_grads(pm, ids, mask, labels)

    adapters = adapters_from_peft(pm, models.backbone_shapes(cfg, spec), decoder_hf_name, "base_model.model.model.")
    trained = {"backbone": adapters, "head": params["head"]}
    frozen = {"backbone": params["backbone"]}
    module = models.classifier(cfg, 3, lora=spec)
    (loss, logits), grads = jax.value_and_grad(loss_fn(module, frozen, jnp.asarray(labels)), has_aux=True)(
        trained, jnp.asarray(ids), jnp.asarray(mask))
    np.testing.assert_allclose(logits, want_logits, atol=1e-4, rtol=1e-4)
    assert abs(float(loss) - want_loss) < 1e-5
    base_logits = models.classifier(cfg, 3).apply({"params": params}, ids, mask, deterministic=True)
    assert np.abs(np.asarray(base_logits) - want_logits).max() > 1e-2  # the adapters matter

    n_adapters = 0
    for path, g in jax.tree_util.tree_flatten_with_path(grads["backbone"])[0]:
        keys = tuple(p.key for p in path)
        module_name = decoder_hf_name(keys[:-1] + ("kernel",)).removesuffix(".weight")
        ab = "A" if keys[-1] == "lora_a" else "B"
        assert_rel_close(g, tg[f"base_model.model.model.{module_name}.lora_{ab}.default.weight"].T, what=module_name)
        n_adapters += 1
    assert n_adapters == 2 * len(targets) * cfg.num_layers
    assert len(tg) == n_adapters + 1  # peft trains the adapters and a copy of `score`, nothing else
    assert_rel_close(grads["head"]["score"]["kernel"], tg["base_model.model.score.modules_to_save.default.weight"].T,
                     what="score")


def test_encoder_lora_matches_peft_on_roberta(tmp_path):
    """The LoRA paper's RoBERTa recipe: query/value adapters, the classification head trained in full."""
    torch.manual_seed(0)
    cfg_t = transformers.RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=37, max_position_embeddings=64, type_vocab_size=1,
                                       num_labels=2, pad_token_id=1, attn_implementation="eager")
    model = transformers.RobertaForSequenceClassification(cfg_t).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.15)
    model.roberta.save_pretrained(tmp_path)
    pre = models.load_pretrained(str(tmp_path))
    spec = models.lora_spec(pre.config, r=4, alpha=16)
    assert spec.target_modules == ("query", "value")
    pm = with_peft(model, ["query", "value"], alpha=16)
    rng = np.random.default_rng(0)
    mask = (np.arange(9)[None] < np.array([9, 5, 2])[:, None]).astype(np.int64)
    ids = np.where(mask == 1, rng.integers(3, 100, (3, 9)), 1)
    labels = np.array([1, 0, 1])
    want_logits, _, tg = torch_loss_and_grads(pm, ids, mask, labels)

    hf_enc = lambda keys: encoder_lib._hf_name(keys)
    adapters = adapters_from_peft(pm, models.backbone_shapes(pre.config, spec), hf_enc, "base_model.model.roberta.")
    t = lambda x: jnp.asarray(x.detach().numpy())
    c = pm.base_model.model.classifier.modules_to_save["default"]
    head = {"dense": {"kernel": t(c.dense.weight).T, "bias": t(c.dense.bias)},
            "out": {"kernel": t(c.out_proj.weight).T, "bias": t(c.out_proj.bias)}}
    trained = {"backbone": adapters, "head": head}
    module = models.classifier(pre.config, 2, lora=spec)
    (_, logits), grads = jax.value_and_grad(loss_fn(module, {"backbone": pre.backbone}, jnp.asarray(labels)),
                                            has_aux=True)(trained, jnp.asarray(ids), jnp.asarray(mask))
    np.testing.assert_allclose(logits, want_logits, atol=1e-4, rtol=1e-4)
    for path, g in jax.tree_util.tree_flatten_with_path(grads["backbone"])[0]:
        keys = tuple(p.key for p in path)
        name = hf_enc(keys[:-1] + ("kernel",)).removesuffix(".weight")
        ab = "A" if keys[-1] == "lora_a" else "B"
        assert_rel_close(g, tg[f"base_model.model.roberta.{name}.lora_{ab}.default.weight"].T, what=name)
    pre_c = "base_model.model.classifier.modules_to_save.default."
    for ours, theirs in (("dense", "dense"), ("out", "out_proj")):
        assert_rel_close(grads["head"][ours]["kernel"], tg[pre_c + theirs + ".weight"].T, what=ours)
        assert_rel_close(grads["head"][ours]["bias"], tg[pre_c + theirs + ".bias"], what=ours)


def test_init_like_peft_and_fresh_adapters_change_nothing(tmp_path):
    model = tiny_decoder("llama")
    cfg, params = load(model, tmp_path)
    spec = models.lora_spec(cfg, r=8, alpha=16)
    shapes = models.backbone_shapes(cfg, spec)
    adapters = L.init_adapters(jax.random.key(0), shapes)
    a = adapters["layers_0"]["self_attn"]["q_proj"]["lora_a"]
    b = adapters["layers_0"]["self_attn"]["q_proj"]["lora_b"]
    assert a.shape == (cfg.hidden_size, 8) and b.shape == (8, cfg.num_heads * cfg.head_dim)
    assert np.all(np.asarray(b) == 0)
    # peft's kaiming_uniform_(a=sqrt(5)) on a [r, in] weight: U(-1/sqrt(in), 1/sqrt(in))
    pm = with_peft(tiny_decoder("llama"), ["q_proj", "v_proj"], r=8, alpha=16)
    peft_a = pm.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.detach().numpy()
    bound = 1 / math.sqrt(cfg.hidden_size)
    for x in (np.asarray(a), peft_a):
        assert np.abs(x).max() <= bound and np.abs(x).max() > 0.9 * bound
        assert abs(np.std(x) - bound / math.sqrt(3)) < 0.1 * bound
    keys = [k for k, _ in jax.tree_util.tree_flatten_with_path(adapters)[0]]
    assert len(keys) == 2 * 2 * cfg.num_layers  # q and v (peft's default), A and B, each layer
    assert not np.allclose(a, adapters["layers_1"]["self_attn"]["q_proj"]["lora_a"])  # one key per module
    ids, mask = tiny_batch()
    merged = {"backbone": L.merge(params["backbone"], adapters), "head": params["head"]}
    with_lora = models.classifier(cfg, 3, lora=spec).apply({"params": merged}, ids, mask, deterministic=True)
    plain = models.classifier(cfg, 3).apply({"params": params}, ids, mask, deterministic=True)
    np.testing.assert_array_equal(np.asarray(with_lora), np.asarray(plain))


def test_dropout_acts_on_the_adapter_input_only(tmp_path):
    model = tiny_decoder("qwen2")
    cfg, params = load(model, tmp_path)
    spec = models.lora_spec(cfg, r=4, alpha=8, dropout=0.5)
    adapters = L.init_adapters(jax.random.key(0), models.backbone_shapes(cfg, spec))
    ids, mask = tiny_batch()
    run = lambda adapters, det: np.asarray(models.classifier(cfg, 3, lora=spec).apply(
        {"params": {"backbone": L.merge(params["backbone"], adapters), "head": params["head"]}}, ids, mask,
        deterministic=det, rngs=None if det else {"dropout": jax.random.key(3)}))
    # B = 0: the adapter adds nothing, so dropout on its input leaves the output exactly as it was
    np.testing.assert_array_equal(run(adapters, False), run(adapters, True))
    nonzero = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.3 if p[-1].key == "lora_b" else x, adapters)
    assert np.abs(run(nonzero, False) - run(nonzero, True)).max() > 1e-3


def test_split_and_merge_round_trip(tmp_path):
    cfg = models.read_config(tiny_decoder_dir(tmp_path))
    spec = models.lora_spec(cfg, target_modules="all-linear")
    shapes = models.backbone_shapes(cfg, spec)
    base, adapters = L.split(shapes)
    assert not any(L.is_adapter(p) for p, _ in jax.tree_util.tree_flatten_with_path(base)[0])
    assert all(L.is_adapter(p) for p, _ in jax.tree_util.tree_flatten_with_path(adapters)[0])
    assert jax.tree.structure(L.merge(base, adapters)) == jax.tree.structure(shapes)
    assert L.num_adapter_params(shapes) == cfg.num_layers * 8 * (
        7 * cfg.hidden_size + 2 * cfg.num_heads * cfg.head_dim + 2 * cfg.num_kv_heads * cfg.head_dim
        + 3 * cfg.intermediate_size)  # each of the 7 projections: r * (in + out)


def tiny_decoder_dir(tmp_path):
    tiny_decoder("qwen3").save_pretrained(tmp_path)
    return tmp_path


def test_target_names_that_match_nothing_are_refused(tmp_path):
    cfg = models.read_config(tiny_decoder_dir(tmp_path))
    with pytest.raises(ValueError, match="'query' matches no layer"):
        models.lora_spec(cfg, target_modules=["q_proj", "query"])
