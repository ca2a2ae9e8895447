"""The ViT and character-LM model families and the offline character corpus."""

from __future__ import annotations

import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from proxy_tasks import _charlm, _text, _vit
from proxy_tasks._data import load_digits_dataset

TINY_VIT = {"patch_size": 4, "width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2}
TINY_CHARLM = {"seq_len": 8, "width": 16, "depth": 2, "heads": 2, "mlp_ratio": 2}


def vit_case():
    data = load_digits_dataset()
    return _vit.make_vit(TINY_VIT), data, 10


def charlm_case():
    data, vocab = _text.load_char_corpus(seq_len=TINY_CHARLM["seq_len"])
    return _charlm.make_charlm(TINY_CHARLM), data, len(vocab)


CASES = {"vit": vit_case, "charlm": charlm_case}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def test_params_are_float32_and_loss_starts_at_log_classes(case):
    model, data, classes = case
    params = jax.jit(model.init)(jax.random.key(0))
    leaves = jax.tree_util.tree_leaves(params)
    assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)
    loss = jax.jit(model.loss)(params, data.x_train[:32], data.y_train[:32])
    assert loss.shape == () and loss.dtype == jnp.float32
    # The output layer starts at zero: every class is equally likely.
    assert float(loss) == pytest.approx(math.log(classes), abs=1e-4)
    metric = jax.jit(model.metric)(params, data.x_val[:300], data.y_val[:300])
    assert metric.shape == () and np.isfinite(float(metric))


def test_adam_steps_under_one_jit_decrease_the_training_loss(case):
    model, data, _ = case
    optimizer = optax.adam(1e-2)
    x, y = jnp.asarray(data.x_train[:64]), jnp.asarray(data.y_train[:64])

    @jax.jit
    def train(key):
        params = model.init(key)

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(model.loss)(params, x, y)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), length=40)
        return losses, model.loss(params, x, y)

    losses, final = train(jax.random.key(1))
    assert np.all(np.isfinite(np.asarray(losses)))
    assert float(final) < 0.7 * float(losses[0])


def test_same_key_same_params_and_loss_different_key_different_params(case):
    model, data, _ = case
    init = jax.jit(model.init)
    first, again, other = (init(jax.random.key(k)) for k in (3, 3, 4))
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    differs = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(other), strict=True)
    ]
    assert any(differs)
    x, y = data.x_train[:16], data.y_train[:16]
    loss = jax.jit(model.loss)
    assert float(loss(first, x, y)) == float(loss(again, x, y))


@jax.jit
def _randomized(params, key):
    """Params with every leaf random, so no layer (e.g. the zero head) hides a dependency."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return unravel(0.3 * jax.random.normal(key, flat.shape))


def test_charlm_is_causal():
    config = {**TINY_CHARLM, "seq_len": 12}
    params = _randomized(jax.jit(_charlm.make_charlm(config).init)(jax.random.key(0)), jax.random.key(1))
    ids = jnp.asarray(_text.encode("abcdefghijkl"))[None]
    changed = ids.at[0, 7].set(int(_text.encode("Z")[0]))
    logits = jax.jit(lambda p, ids: _charlm.charlm_logits(p, ids, config))
    before, after = logits(params, ids), logits(params, changed)
    assert before.shape == (1, 12, len(_text.VOCAB))
    np.testing.assert_array_equal(before[:, :7], after[:, :7])
    # The change does reach position 7 and later ones.
    assert not np.allclose(before[:, 7:], after[:, 7:])


def test_charlm_tied_embeddings_start_near_uniform():
    config = {**TINY_CHARLM, "tie_embeddings": True}
    model = _charlm.make_charlm(config)
    params = jax.jit(model.init)(jax.random.key(0))
    assert "head" not in params
    data, vocab = _text.load_char_corpus(seq_len=8)
    loss = float(jax.jit(model.loss)(params, data.x_train[:32], data.y_train[:32]))
    assert loss == pytest.approx(math.log(len(vocab)), abs=0.05)


def test_charlm_without_mlp_is_attention_only():
    config = {**TINY_CHARLM, "depth": 1, "mlp_ratio": 0}
    params = _randomized(jax.jit(_charlm.make_charlm(config).init)(jax.random.key(0)), jax.random.key(1))
    assert sorted(params["block_00"]) == ["attention_norm", "attention_out", "qkv"]
    # By hand: embeddings 97x16 + positions 8x16, final norm 2x16, head 16x97 + 97, and the
    # block's norm 2x16, qkv 16x48 + 48 and output 16x16 + 16.
    by_hand = 97 * 16 + 8 * 16 + 32 + (16 * 97 + 97) + 32 + (16 * 48 + 48) + (16 * 16 + 16)
    assert sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)) == by_hand
    # The same as a block with an MLP whose output layer is zero (it adds nothing).
    with_mlp = {**config, "mlp_ratio": 2}
    mlp_params = jax.jit(_charlm.make_charlm(with_mlp).init)(jax.random.key(2))["block_00"]
    zero_out = jax.tree_util.tree_map(jnp.zeros_like, mlp_params["mlp_out"])
    padded = {**params, "block_00": {**params["block_00"], **mlp_params, **params["block_00"]}}
    padded["block_00"]["mlp_out"] = zero_out
    ids = jnp.asarray(_text.encode("abcdefgh"))[None]
    np.testing.assert_allclose(
        _charlm.charlm_logits(params, ids, config), _charlm.charlm_logits(padded, ids, with_mlp), atol=1e-6
    )
    # And not the same as a block whose MLP does add something.
    padded["block_00"]["mlp_out"] = mlp_params["mlp_out"]
    assert not np.allclose(
        _charlm.charlm_logits(params, ids, config), _charlm.charlm_logits(padded, ids, with_mlp), atol=1e-4
    )


def test_vit_patches_flat_rows_like_images():
    flat = load_digits_dataset().x_train[:3]
    assert flat.shape == (3, 64)
    images = flat.reshape(3, 8, 8)
    patches = _vit._patchify(jnp.asarray(flat), image_size=8, patch_size=2)
    np.testing.assert_array_equal(patches, _vit._patchify(jnp.asarray(images), image_size=8, patch_size=2))
    assert patches.shape == (3, 16, 4)
    # Patch 1 is the 2x2 square at rows 0-1, columns 2-3, read row by row.
    np.testing.assert_array_equal(patches[:, 1], images[:, 0:2, 2:4].reshape(3, 4))


def test_vit_cls_pooling_reads_the_cls_token():
    config = {**TINY_VIT, "pool": "cls"}
    params = _randomized(jax.jit(_vit.make_vit(config).init)(jax.random.key(0)), jax.random.key(1))
    assert params["cls"].shape == (16,) and params["position"].shape == (5, 16)
    logits = jax.jit(lambda p: _vit.vit_logits(p, load_digits_dataset().x_train[:4], config))
    # Not a constant shift: LayerNorm would cancel that exactly.
    moved = {**params, "cls": params["cls"] + jax.random.normal(jax.random.key(2), (16,))}
    assert logits(params).shape == (4, 10)
    assert not np.allclose(logits(params), logits(moved))


@pytest.mark.parametrize(
    "make, config, match",
    [
        (_vit.make_vit, {"widht": 32}, "widht"),
        (_vit.make_vit, {"width": 30, "heads": 4}, "divisible by heads"),
        (_vit.make_vit, {"patch_size": 3}, "patch_size"),
        (_vit.make_vit, {"pool": "max"}, "pool"),
        (_charlm.make_charlm, {"depht": 2}, "depht"),
        (_charlm.make_charlm, {"seq_len": 0}, "seq_len"),
        (_charlm.make_charlm, {"mlp_ratio": -1}, "mlp_ratio"),
        (_charlm.make_charlm, {"tie_embeddings": 1}, "tie_embeddings"),
    ],
)
def test_bad_config_names_the_problem(make, config, match):
    with pytest.raises(ValueError, match=match):
        make(config)


def test_size_dicts_build_and_scale_compute_by_about_ten():
    for sizes, make, flops in (
        (_vit.VIT_SIZES, _vit.make_vit, _vit.training_flops),
        (_charlm.CHARLM_SIZES, _charlm.make_charlm, _charlm.training_flops),
    ):
        assert sorted(sizes) == ["a", "b", "c"]
        for size in sizes.values():
            assert size["steps"] > 0 and size["batch_size"] > 0
            make(size)  # the training keys beside the model keys are accepted
        assert 7 <= flops(sizes["b"]) / flops(sizes["a"]) <= 14
        assert 70 <= flops(sizes["c"]) / flops(sizes["a"]) <= 140


def test_char_corpus_windows_are_next_character_targets():
    data, vocab = _text.load_char_corpus(seq_len=16)
    assert len(vocab) == 97 and vocab[0] == "\n" and vocab[-1] == _text.UNKNOWN
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
        assert x.dtype == np.int32 and y.dtype == np.int32 and x.shape == y.shape
        assert x.shape[1] == 16
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        np.testing.assert_array_equal(y[:-1, -1], x[1:, 0])  # stride = seq_len: contiguous
    # Training windows are the start of the text, validation windows the stretch after it.
    text = _text.corpus_text()
    ids = _text.encode(text)
    np.testing.assert_array_equal(data.x_train.reshape(-1), ids[: data.x_train.size])
    split = round(len(text) * 0.8)
    np.testing.assert_array_equal(data.x_val[0], ids[split : split + 16])
    assert data.x_train.size <= split


def test_char_corpus_is_deterministic_and_options_apply():
    first, _ = _text.load_char_corpus(seq_len=16, stride=8)
    _text.load_char_corpus.cache_clear()
    again, _ = _text.load_char_corpus(seq_len=16, stride=8)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.x_train[1, :8], first.x_train[0, 8:])
    sklearn_data, _ = _text.load_char_corpus(seq_len=16, source="sklearn_descr")
    assert 0 < sklearn_data.x_train.shape[0] < first.x_train.shape[0]
    with pytest.raises(ValueError, match="unknown corpus source"):
        _text.load_char_corpus(seq_len=16, source="shakespeare")
    with pytest.raises(ValueError, match="stride"):
        _text.load_char_corpus(seq_len=16, stride=0)


def test_encode_maps_unknown_characters_and_decode_round_trips():
    ascii_text = "def f(x):\n    return x ** 2  # ~{}|"
    assert _text.decode(_text.encode(ascii_text)) == ascii_text
    assert (
        _text.decode(_text.encode("\u201cquoted\u201d\t"))
        == f"{_text.UNKNOWN}quoted{_text.UNKNOWN}{_text.UNKNOWN}"
    )
