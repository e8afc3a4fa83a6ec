"""Real goldens for the reliability suite, recorded once per session, with the model pair
(identical, changed) that gives each golden a known verdict: 0 and 1."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.harness import run_cli

V1 = Path(__file__).parent.parent / "goldens" / "dense_v1.h5"

# Metric limits tight enough that a damaged stored metric changes the verdict: without
# them metrics are informational and their damage could never be seen in a verdict.
CONFIG = """\
[metrics]
accuracy = { max_drop = 0.001 }
mae = { max_drop = 0.001 }
"""


@dataclass(frozen=True)
class GoldenCase:
    name: str
    golden: Path
    same: Path  # compare exits 0
    changed: Path  # compare exits 1
    config: Path

    @property
    def digest(self) -> bool:
        """Format 2 (content digest): verify must refuse whatever compare refuses."""
        return self.name != "v1"


@pytest.fixture(scope="session")
def reliability_goldens(tmp_path_factory: pytest.TempPathFactory, dense_model: Path,
                        dense_changed: Path, two_sig_model: Path) -> list[GoldenCase]:
    from tests.fixtures.models import save_noisy, save_two_signatures

    root = tmp_path_factory.mktemp("reliability")
    config = root / "snapshot.toml"
    config.write_text(CONFIG)
    plain = root / "plain.toml"  # metric limits need labels, which only "dense" has
    plain.write_text("[defaults]\n")
    rng = np.random.default_rng(9)
    np.savez(root / "data.npz", features=rng.normal(size=(24, 4)).astype(np.float32),
             labels=rng.integers(0, 3, 24), target=rng.normal(size=24))
    cases = []

    dense = root / "dense.h5"
    _record(dense_model, dense, "--inputs", root / "data.npz", "--labels",
            f"{root / 'data.npz'}:labels", "--batch-size", "8", "--latency-batch-sizes", "1")
    cases.append(GoldenCase("dense", dense, dense_model, dense_changed, config))

    noisy_model = save_noisy(root / "noisy_model")
    noisy_shifted = save_noisy(root / "noisy_shifted", shift=0.5)
    noisy = root / "noisy.h5"
    _record(noisy_model, noisy, "--num-samples", "16", "--no-latency")
    cases.append(GoldenCase("noisy", noisy, noisy_model, noisy_shifted, plain))

    multi_changed = save_two_signatures(root / "multi_changed", offset=0.25)
    multi = root / "multi.h5"
    _record(two_sig_model, multi, "--signature", "all", "--num-samples", "12", "--no-latency")
    cases.append(GoldenCase("multi", multi, two_sig_model, multi_changed, plain))

    v1 = root / "dense_v1.h5"
    shutil.copyfile(V1, v1)  # never let a test touch the committed file
    cases.append(GoldenCase("v1", v1, dense_model, dense_changed, plain))
    return cases


def _record(model: Path, golden: Path, *args: object) -> None:
    res = run_cli("record", model, "--golden", golden, *args)
    assert res.code == 0, res
