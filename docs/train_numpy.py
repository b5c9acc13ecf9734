"""Train a small audio classifier from an audioflow dataset with NumPy alone: no TensorFlow, no torch.

    python docs/train_numpy.py DATASET [--steps 200] [--batch-size 16] [--grain]

The examples come from `audioflow.beam.arrays.RandomAccessSource`, in a new seeded random order each
epoch (with --grain: Grain's MapDataset over the same source, shuffled, mapped and batched by
Grain). Each clip becomes the log energy of a fixed 1-second crop in 32 frequency bands, and a
softmax regression learns from those by minibatch gradient descent. It is an example of wiring,
not of modelling: swap `features` and `Model` for your own network, in any framework.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audioflow.beam.arrays import RandomAccessSource, load_info

NUM_BANDS = 32
CROP_SECONDS = 1.0


def features(example: dict[str, Any]) -> np.ndarray:
    """Log energy in NUM_BANDS equal frequency bands of the first second (mono, zero-padded)."""
    audio = example["audio"].mean(axis=1)  # float32 [frames, channels] -> mono
    frames = int(CROP_SECONDS * example["sample_rate"])
    crop = np.zeros(frames, np.float32)
    crop[: min(frames, audio.size)] = audio[:frames]
    power = np.abs(np.fft.rfft(crop)) ** 2
    bands = np.array_split(power, NUM_BANDS)
    return np.log1p(np.array([band.sum() for band in bands], np.float32))


def to_training_pair(example: dict[str, Any]) -> tuple[np.ndarray, np.int64]:
    return features(example), np.int64(example["label"])


def numpy_batches(source: RandomAccessSource, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches, a new random order each epoch (the source reads any example by position)."""
    for epoch in range(sys.maxsize):
        order = np.random.default_rng([seed, epoch]).permutation(len(source))
        for start in range(0, len(order), batch_size):
            pairs = [to_training_pair(source[int(i)]) for i in order[start : start + batch_size]]
            yield np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def grain_batches(source: RandomAccessSource, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same through Grain: shuffle, map and batch are Grain's; the source is ours."""
    import grain

    dataset = grain.MapDataset.source(source).shuffle(seed=seed).map(to_training_pair).batch(batch_size).repeat()
    yield from dataset


@dataclass
class Model:
    """Softmax regression on standardized features."""

    num_classes: int
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray = field(init=False)
    bias: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.weights = np.zeros((self.mean.size, self.num_classes), np.float32)
        self.bias = np.zeros(self.num_classes, np.float32)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        logits = ((x - self.mean) / self.scale) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def step(self, x: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        """One gradient step on a batch; returns the batch's cross-entropy before the step."""
        p = self.probabilities(x)
        loss = float(-np.log(p[np.arange(len(y)), y] + 1e-9).mean())
        p[np.arange(len(y)), y] -= 1
        standardized = (x - self.mean) / self.scale
        self.weights -= learning_rate * standardized.T @ p / len(y)
        self.bias -= learning_rate * p.mean(axis=0)
        return loss

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.probabilities(x).argmax(axis=1) == y).mean())


def train(
    dataset: str,
    *,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 0.5,
    seed: int = 0,
    use_grain: bool = False,
) -> dict[str, Any]:
    """Trains on the `train` split; returns the losses and, if the dataset has one, accuracy on `test`."""
    info = load_info(dataset)
    num_classes = len(info.label_names) if info.label_names else max(int(label) for label in info.labels["counts"]) + 1
    source = RandomAccessSource(dataset, "train")
    # Standardize with statistics of a first batch (a real job would use a larger sample).
    first = np.stack([features(source[i]) for i in range(min(len(source), 64))])
    model = Model(num_classes, first.mean(axis=0), first.std(axis=0) + 1e-3)
    batches = (grain_batches if use_grain else numpy_batches)(source, batch_size, seed)
    losses = [model.step(x, y, learning_rate) for _, (x, y) in zip(range(steps), batches, strict=False)]
    result: dict[str, Any] = {"losses": losses, "num_classes": num_classes}
    if "test" in info.splits and info.splits["test"].num_examples:
        test = RandomAccessSource(dataset, "test", info=info)
        pairs = [to_training_pair(test[i]) for i in range(len(test))]
        result["test_accuracy"] = model.accuracy(np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs]))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="dataset folder (local path or gs://) with a train split")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grain", action="store_true", help="batch with Grain (pip install grain)")
    args = parser.parse_args(argv)
    result = train(
        args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        use_grain=args.grain,
    )
    losses = result["losses"]
    print(f"steps {len(losses)}: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    if "test_accuracy" in result:
        print(f"test accuracy {result['test_accuracy']:.3f} ({result['num_classes']} classes)")


if __name__ == "__main__":
    main()
