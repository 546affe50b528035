"""TensorFlow's "Custom training with tf.distribute.Strategy" tutorial, with only the import
changed, on synthetic data of Fashion-MNIST's shape (28x28x1 images, 10 classes).

    ringrun -np 2 examples/tf2_custom_training.py          # test accuracy 0.89 after 2 epochs

TensorFlow 2 style: eager execution, a ``tf.function`` training step run by
``strategy.run``, ``tf.GradientTape``, ``tf.nn.compute_average_loss`` and the Keras optimizer's
``apply_gradients`` (which sums the replicas' gradients with one all-reduce per step).
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

import ringtrain.v2 as tf  # the tutorial: import tensorflow as tf


def synthetic_fashion_mnist(n_train: int, n_test: int, seed: int = 0) -> tuple:
    """Images of Fashion-MNIST's shape: each class is a fixed random black-and-white pattern
    plus noise."""
    rng = np.random.default_rng(seed)
    templates = (rng.uniform(size=(10, 28, 28, 1)) > 0.5).astype(np.float64)

    def draw(n):
        labels = rng.integers(0, 10, n)
        images = 0.7 * templates[labels] + 0.3 * rng.uniform(size=(n, 28, 28, 1))
        return images.astype(np.float32), labels.astype(np.int64)
    return draw(n_train), draw(n_test)


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=1024)
    parser.add_argument("--test-samples", type=int, default=256)
    args = parser.parse_args()
    (train_images, train_labels), (test_images, test_labels) = synthetic_fashion_mnist(
        args.train_samples, args.test_samples)
    tf.keras.utils.set_random_seed(0)   # the same initial weights in every run

    # --- the tutorial's code from here on ---
    strategy = tf.distribute.MirroredStrategy()
    print(f"Number of devices: {strategy.num_replicas_in_sync}")

    BUFFER_SIZE = len(train_images)
    BATCH_SIZE_PER_REPLICA = 32
    GLOBAL_BATCH_SIZE = BATCH_SIZE_PER_REPLICA * strategy.num_replicas_in_sync
    EPOCHS = args.epochs

    train_dataset = tf.data.Dataset.from_tensor_slices((train_images, train_labels)).shuffle(
        BUFFER_SIZE, seed=42).batch(GLOBAL_BATCH_SIZE)
    train_dist_dataset = strategy.experimental_distribute_dataset(train_dataset)

    def create_model():
        return tf.keras.Sequential([
            tf.keras.layers.Conv2D(16, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Conv2D(16, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10),
        ])

    with strategy.scope():
        loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE)

        def compute_loss(labels, predictions):
            per_example_loss = loss_object(labels, predictions)
            return tf.nn.compute_average_loss(per_example_loss,
                                              global_batch_size=GLOBAL_BATCH_SIZE)

        model = create_model()
        optimizer = tf.keras.optimizers.Adam()

    @tf.function
    def train_step(inputs):
        images, labels = inputs
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            loss = compute_loss(labels, predictions)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    for epoch in range(EPOCHS):
        total_loss = 0.0
        num_batches = 0
        for x in train_dist_dataset:
            per_replica_losses = strategy.run(train_step, args=(x,))
            total_loss += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_losses,
                                          axis=None)
            num_batches += 1
        train_loss = total_loss / num_batches
        print(f"Epoch {epoch + 1}, Loss: {float(train_loss):.4f}")
    # --- end of the tutorial's loop ---

    predictions = model(test_images)  # eager: a tensor with a value
    accuracy = float(np.mean(np.argmax(predictions.numpy(), axis=1) == test_labels))
    if strategy.extended.is_chief:
        print(f"test accuracy: {accuracy:.4f}")
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes()
                                     for w in model.get_weights()))
    print(f"weights sha256: {digest.hexdigest()}")
    return accuracy


if __name__ == "__main__":
    main()
