"""The public API (`import vadkit`): lazy and torch-free until used, the README's example run as
written on tiny data, and a fourth model defined here that trains, resumes and scores with no
edit anywhere else."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_dataset
from torch import nn

import vadkit
from vadkit.errors import VadkitError
from vadkit.io.scores import read_scores
from vadkit.models import register_model, unregister_model
from vadkit.models.common import ModelConfig, VadModel, bce_bags

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "api.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_import_vadkit_is_torch_free_and_lists_its_api():
    code = (
        "import sys, vadkit; names = set(vadkit.__all__); "
        "assert {'extract_videos', 'train', 'TrainConfig', 'load_run', 'score_to_dir', "
        "'evaluate', 'read_annotations', 'create_model', 'list_models'} <= names, names; "
        "vadkit.list_models(); vadkit.TrainConfig; vadkit.read_annotations; vadkit.evaluate; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        vadkit.no_such_thing  # noqa: B018


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    make_dataset(tmp_path, train=(6, 6), val=(4, 4), crops=1, t_range=(8, 20), shift=4.0)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "best ROC AUC" in out and "ROC AUC" in out.splitlines()[-1]
    assert sorted(read_scores(tmp_path / "scores")) == sorted(
        line.split(",")[0] for line in (tmp_path / "val.csv").read_text().splitlines()[1:]
    )
    assert (tmp_path / "runs" / "rtfm" / "best.safetensors").is_file()


# ---------------------------------------------------------------- a fourth model


@dataclass(frozen=True)
class LinearConfig(ModelConfig):
    feature_dim: int = 2048
    bias: bool = True


class LinearScorer(VadModel):
    """One linear layer per snippet; the bag score is the video's highest snippet score."""

    name = "linear-test"
    Config = LinearConfig
    default_batch_size = 4

    def __init__(self, config: LinearConfig | None = None, /, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.fc = nn.Linear(self.cfg.feature_dim, 1, bias=self.cfg.bias)

    def forward(self, clip: torch.Tensor, patches: torch.Tensor | None = None) -> dict:
        return {"scores": torch.sigmoid(self.fc(clip)).squeeze(-1).mean(1)}  # (b, t)

    def loss(self, normal, abnormal):
        out_n, out_a = self.forward_pair(normal, abnormal)
        bce = bce_bags(out_n["scores"].max(1).values, out_a["scores"].max(1).values)
        return bce, {"bce": bce.detach()}


@pytest.fixture
def linear_model():
    register_model(LinearScorer)
    yield LinearScorer.name
    unregister_model(LinearScorer.name)


def test_a_fourth_model_trains_checkpoints_resumes_and_scores(linear_model, tmp_path):
    ds = make_dataset(tmp_path, train=(4, 4), val=(3, 3), t_range=(6, 12))
    assert linear_model in vadkit.list_models()

    def config(out: str, **kw):
        return vadkit.TrainConfig(
            model=linear_model, train=str(ds["train"]), features=str(ds["features"]), out=out,
            val=str(ds["val"]), annotations=str(ds["annotations"]), steps=6, eval_every=2,
            device="cpu", lr=1e-2, **kw,
        )  # fmt: skip

    full = vadkit.train(config(str(tmp_path / "full")))

    def interrupt(event) -> None:
        if event.kind == "step" and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(VadkitError, match="interrupted at step 3"):
        vadkit.train(config(str(tmp_path / "cut")), callback=interrupt)
    resumed = vadkit.train(config(str(tmp_path / "cut")), resume=True)
    assert resumed.step == full.step == 6 and resumed.best_roc_auc == full.best_roc_auc

    run = vadkit.load_run(tmp_path / "cut", device="cpu")
    assert run.meta["model"] == linear_model
    assert run.meta["model_args"] == {"feature_dim": 32, "bias": True}
    ref = vadkit.load_run(tmp_path / "full", device="cpu")
    for k, v in ref.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[k], v), k
    sources, _ = vadkit.resolve_inputs([ds["val"]], features=ds["features"])
    vadkit.score_to_dir(run, sources, tmp_path / "scores")
    scores = {v: f for v, (f, _) in read_scores(tmp_path / "scores").items()}
    metrics = vadkit.evaluate(scores, vadkit.read_annotations(ds["annotations"]))
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and np.isfinite(metrics["average_precision"])
    assert os.path.isfile(tmp_path / "cut" / "state.pt")
