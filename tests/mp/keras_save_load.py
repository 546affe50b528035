"""Run under ``ringrun -np N`` with a directory: Model.save / load_model under MirroredStrategy.

Every rank passes its own path (``<dir>/rank<r>/model.h5``): only the chief writes (its path),
and load_model reads the chief's file and sends it to the others, so a worker's own path never
exists. The loaded model has the saved weights on every rank and, trained one more epoch,
ends where the saved model ends (its optimizer state came back). Prints ``keras_save_load ok``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import ringtrain as tf

keras = tf.keras


def main():
    strategy = tf.distribute.MirroredStrategy()  # initializes the process group
    rank, size = tf.rank(), tf.size()
    path = os.path.join(sys.argv[1], f"rank{rank}", "model.h5")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(14, 3)).astype(np.float32)   # 14 rows: uneven shards at np=3
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    with strategy.scope():
        model = keras.Sequential([keras.layers.Dense(4, activation="tanh", input_shape=(3,)),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, y, epochs=2, batch_size=7, shuffle=False, verbose=0)
    model.save(path)
    assert os.path.exists(path) == (rank == 0), (rank, os.path.exists(path))
    with strategy.scope():
        loaded = keras.models.load_model(path)
    gather = strategy.extended.comm.allgather_object
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=1, batch_size=7, shuffle=False, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=7, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    everyone = gather([w.tolist() for w in loaded.get_weights()])
    assert all(w == everyone[0] for w in everyone), "ranks disagree"
    assert size >= 1
    print("keras_save_load ok", flush=True)


if __name__ == "__main__":
    main()
