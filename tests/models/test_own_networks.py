"""Real Keras models of your own through the runs: nested sub-models that
repeat layer names, and a transformer block (attention, your own layers)."""

import keras
import numpy as np

import keras_lottery as kl

SMALL = dict(dataset="digits", steps=4, batch_size=32, eval_every=4,
             checkpoint_iters=[0, 1, 4], seed=0, verbose=0)


def _tower(name, units):
    inputs = keras.Input((64,))
    x = keras.layers.Dense(units, activation="relu", name="dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(8, name="out")(x), name=name)


def test_sub_models_that_repeat_layer_names_train_and_rewind(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    both = keras.layers.Concatenate()([_tower("tower_a", 16)(x), _tower("tower_b", 12)(x)])
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(both))
    run = kl.train(model, out=tmp_path / "train", **SMALL)
    child = kl.rewind(run, iteration=1, density=0.5, seed=1, out=tmp_path / "rewind")
    masks = kl.get_masks(child.load_model())
    assert list(masks) == ["tower_a/dense", "tower_a/out", "tower_b/dense",
                           "tower_b/out", "head"]
    total = 64 * 16 + 16 * 8 + 64 * 12 + 12 * 8 + 16 * 10
    assert sum(int(m.sum()) for m in masks.values()) == total // 2
    assert child.density == 0.5
    # Rewound: the kept weights are those of k = 1, pruned ones zero.
    rewound = child.load_model(1)
    at_k = run.load_model(1)
    for key, (kernel, start) in {k: (v, kl.get_kernels(at_k)[k])
                                 for k, v in kl.get_kernels(rewound).items()}.items():
        np.testing.assert_array_equal(kernel, start * masks[key])


@keras.saving.register_keras_serializable(package="tests_own_networks")
class TransformerBlock(keras.layers.Layer):
    """keras-io's text-classification TransformerBlock (with a config)."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = (
            embed_dim, num_heads, ff_dim, rate)
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([keras.layers.Dense(ff_dim, activation="relu"),
                                     keras.layers.Dense(embed_dim)])
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.dropout1(self.att(inputs, inputs), training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn_output)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "ff_dim": self.ff_dim, "rate": self.rate}


@keras.saving.register_keras_serializable(package="tests_own_networks")
class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = keras.ops.arange(start=0, stop=keras.ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)

    def get_config(self):
        return {**super().get_config(), "maxlen": self.maxlen,
                "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}


def _transformer(maxlen=8, vocab=32, dim=8):
    inputs = keras.Input((maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab, dim)(inputs)
    x = TransformerBlock(dim, 2, 16)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


TRANSFORMER_KEYS = [
    "transformer_block/att/query_dense", "transformer_block/att/key_dense",
    "transformer_block/att/value_dense", "transformer_block/att/output_dense",
    "transformer_block/ffn/dense", "transformer_block/ffn/dense_1", "logits"]


def test_a_transformer_block_trains_prunes_rewinds_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, (64, 8))
    y = (x[:, 0] > 15).astype("int64")
    data = kl.data.arrays(x[:48], y[:48], x[48:], y[48:])
    small = dict(SMALL, dataset=data, batch_size=16)
    run = kl.train(_transformer(), out=tmp_path / "train", **small)
    child = kl.rewind(run, iteration=1, density=0.3, seed=1, dataset=data,
                      out=tmp_path / "rewind", verbose=0)
    model = child.load_model()
    masks = kl.get_masks(model)
    assert list(masks) == TRANSFORMER_KEYS
    total = 4 * 8 * 2 * 8 + 2 * 8 * 16 + 8 * 2
    assert sum(m.size for m in masks.values()) == total
    assert sum(int(m.sum()) for m in masks.values()) == round(0.3 * total)
    for key, kernel in kl.get_kernels(model).items():
        assert not kernel[masks[key] == 0].any(), key  # pruned weights stay zero
    model.save(tmp_path / "pruned.keras")
    loaded = kl.load_model(tmp_path / "pruned.keras")
    for key, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[key])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x[:4])),
                               keras.ops.convert_to_numpy(model(x[:4])), rtol=1e-5)
