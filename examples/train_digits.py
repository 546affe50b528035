"""The first command: a Keras CNN trained on scikit-learn's digits by several workers.

    ringrun -np 2 examples/train_digits.py        # 0.9733 test accuracy, 21 s on 2 idle cores

Each worker holds a replica of the model and trains on its half of every global batch of 64
(MirroredStrategy); the ring all-reduce averages the gradients, so the replicas stay identical.
The chief (rank 0) draws the progress bar, prints each epoch's loss and accuracy, writes
TensorBoard event files to ``runs/digits/logs`` and the best weights to
``runs/digits/checkpoint.weights.npz``. At the end every worker prints the test accuracy and a
digest of its weights: the digests agree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_digits import build_model, load  # the same CNN and data split as one worker
from mirrored_keras import weights_digest

import ringtrain as tf


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default="runs/digits", help="logs and checkpoint go here")
    parser.add_argument("--verbose", type=int, default=1, help="1: progress bar, 2: one line")
    args = parser.parse_args()

    tf.keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load()
    strategy = tf.distribute.MirroredStrategy()
    global_batch = 32 * strategy.num_replicas_in_sync
    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
             .shuffle(len(x_train), seed=0).batch(global_batch))

    with strategy.scope():
        model = build_model()
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=tf.keras.optimizers.Adam(0.003), metrics=["accuracy"])

    out = Path(args.out)
    callbacks = [
        tf.keras.callbacks.TensorBoard(str(out / "logs")),
        tf.keras.callbacks.ModelCheckpoint(str(out / "checkpoint.weights.npz"),
                                           monitor="val_accuracy", save_best_only=True,
                                           save_weights_only=True),
    ]
    model.fit(train, epochs=args.epochs, validation_data=(x_test, y_test),
              callbacks=callbacks, verbose=args.verbose)

    loss, accuracy = model.evaluate(x_test, y_test, batch_size=global_batch, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}, {len(x_test)} images, "
          f"{strategy.num_replicas_in_sync} workers), weights {weights_digest(model)[:16]}", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
