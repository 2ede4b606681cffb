"""`python -m bench.train_injection_classifier`: fit the optional prompt-injection classifier.

A logistic regression over all-MiniLM-L6-v2 sentence embeddings (the `semantic` extra), fit on
the dev split of tests/data/injection/ only, written to
edgeproxy/security/data/injection_classifier.json (384 weights, a bias, and what they were fit
on). Plain gradient descent with L2, classes weighted to balance; numpy only. Deterministic:
the same data and model give the same weights. Evaluate with `python -m bench.injection_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np

from bench.injection_report import DATA, Sample, load
from edgeproxy.cache.embed import LocalMiniLM
from edgeproxy.security.injection_classifier import WEIGHTS

STEPS = 20_000
RATE = 2.0
L2 = 1e-4


def embed(samples: list[Sample]) -> np.ndarray:
    model = LocalMiniLM()
    vectors = asyncio.run(model.embed([sample.text for sample in samples]))
    return np.stack(vectors).astype(np.float64)


def fit(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression by full-batch gradient descent, each class weighing half."""
    weights = np.zeros(features.shape[1])
    bias = 0.0
    balance = np.where(labels == 1, 0.5 / labels.mean(), 0.5 / (1 - labels.mean()))
    for _ in range(STEPS):
        predicted = 1 / (1 + np.exp(-(features @ weights + bias)))
        error = (predicted - labels) * balance / len(labels)
        weights -= RATE * (features.T @ error + L2 * weights)
        bias -= RATE * error.sum()
    return weights, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    dev = [sample for sample in load(args.data) if sample.split == "dev"]
    labels = np.array([float(sample.attack) for sample in dev])
    weights, bias = fit(embed(dev), labels)
    model = {
        "model": LocalMiniLM().name,
        "fit_on": f"dev split of tests/data/injection ({len(dev)} prompts)",
        "bias": round(float(bias), 6),
        "weights": [round(float(w), 6) for w in weights],
    }
    args.out.write_text(json.dumps(model) + "\n", "utf-8")
    print(f"wrote {args.out} ({len(dev)} dev prompts, {int(labels.sum())} attacks)")


if __name__ == "__main__":
    main()
