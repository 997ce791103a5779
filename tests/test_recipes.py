"""Recipes, config files, batch orders and the official protocol (issue 11): the official values,
where each setting comes from, exact resume under every batch order, the official cadence and
how `best` is labelled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train import config, make_dataset, run_cli

from vadkit.data import Sampler, TrainingSet, make_sampler
from vadkit.errors import VadkitError
from vadkit.models.common import CLIP
from vadkit.recipes import RECIPES, get_recipe
from vadkit.score import load_run
from vadkit.train import Event, train
from vadkit.train_config import TrainConfig, read_config_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict[str, Path]:
    return make_dataset(tmp_path_factory.mktemp("ds"), train=(6, 5), val=(3, 3), t_range=(6, 14))


# ---------------------------------------------------------------------- recipes


def test_recipes_json_gives_the_official_values():
    r = run_cli("recipes", "--json")
    assert r.exit_code == 0, r.output
    recipes = json.loads(r.stdout)
    need = {"rtfm-ucf", "rtfm-sh", "mgfn-ucf", "mgfn-xd", "msip-ucf", "msip-sh"}
    assert need <= set(recipes)

    def value(name: str, key: str):
        return recipes[name]["settings"][key]["value"]

    for name in ("rtfm-ucf", "rtfm-sh"):
        assert value(name, "model") == "rtfm" and value(name, "lr") == 1e-3
        assert value(name, "weight_decay") == 5e-3 and value(name, "batch_size") == 32
        assert value(name, "steps") == 15000 and value(name, "segments") == 32
        assert value(name, "loss") == "rtfm" and value(name, "batch_order") == "epoch-shuffle"
        assert recipes[name]["eval_cadence"]["value"] == {"every": 5, "after": 200}
        assert recipes[name]["features"]["value"] == {
            "crops": 10, "feature_dim": 2048, "backbone": "i3d-r50",
        }  # fmt: skip
    for name in ("mgfn-ucf", "mgfn-xd"):
        assert value(name, "model") == "mgfn" and value(name, "lr") == 1e-3
        assert value(name, "weight_decay") == 5e-4 and value(name, "batch_size") == 16
        assert value(name, "loss") == "mgfn" and value(name, "batch_order") == "fixed"
        assert recipes[name]["eval_cadence"]["value"]["every"] == "epoch"
    assert value("mgfn-ucf", "steps") == 50000 == 1000 * (800 // 16)
    assert value("mgfn-xd", "select_metric") == "pr_auc_trapezoid"
    assert recipes["mgfn-xd"]["features"]["value"]["feature_dim"] == 1024
    for name in ("msip-ucf", "msip-sh"):
        assert value(name, "model") == "msip" and value(name, "loss") == "msip"
    for name, recipe in recipes.items():
        entries = [*recipe["settings"].values(), recipe["eval_cadence"], recipe["features"]]
        assert all(e["source"].strip() for e in entries), name
        if name.startswith("msip"):  # MSIP's settings are unpublished: vadkit's stated choice
            unpublished = [k for k, e in recipe["settings"].items() if k not in ("model", "loss")]
            for key in unpublished:
                assert "vadkit's choice (MSIP unpublished)" in recipe["settings"][key]["source"]


def test_recipes_text_lists_every_value_with_its_source():
    r = run_cli("recipes", "rtfm-ucf")
    assert r.exit_code == 0, r.output
    assert "weight_decay" in r.stdout and "RTFM main.py" in r.stdout
    assert "every 5 steps after step 200" in r.stdout and "mgfn-ucf" not in r.stdout
    bad = run_cli("recipes", "rtfm-nope")
    assert bad.exit_code == 1 and "unknown recipe 'rtfm-nope'" in bad.output


def test_recipe_feature_layout_is_checked_against_the_training_features():
    rtfm = get_recipe("rtfm-ucf")
    assert rtfm.feature_mismatch(10, 2048, None) is None  # RTFM's .npy: backbone unknown
    msg = rtfm.feature_mismatch(1, 1024, "i3d-inception")
    assert "expects 10 crop(s), 2048-d, i3d-r50" in msg
    assert "have 1 crop(s), 1024-d, i3d-inception" in msg


# ---------------------------------------------------------------------- where values come from


def test_flags_override_the_config_file_which_overrides_the_recipe(tmp_path):
    (tmp_path / "sub").mkdir()
    toml = tmp_path / "sub" / "run.toml"
    toml.write_text(
        'recipe = "mgfn-ucf"\ntrain = "train.csv"\nbatch-size = 8\nweight_decay = 1e-4\n'
        'from = "stage1"\n[model-arg]\ndims = [16, 32, 64]\n'
    )
    flags = {"out": str(tmp_path / "run"), "weight_decay": 0.0}
    cfg, origins = TrainConfig.from_sources(flags, config=toml)
    assert cfg.recipe == "mgfn-ucf" and cfg.model == "mgfn" and cfg.steps == 50000
    assert cfg.batch_size == 8 and cfg.weight_decay == 0.0 and cfg.batch_order == "fixed"
    assert cfg.train == str(tmp_path / "sub" / "train.csv")  # relative to the file
    assert cfg.from_run == str(tmp_path / "sub" / "stage1")
    assert cfg.model_args == {"dims": [16, 32, 64]}
    assert origins["weight_decay"] == "command line"
    assert origins["batch_size"] == f"config {toml}"
    assert origins["steps"].startswith("recipe mgfn-ucf: MGFN option.py")
    # an explicit recipe replaces the file's
    cfg2, _ = TrainConfig.from_sources(flags, recipe="rtfm-ucf", config=toml)
    assert cfg2.recipe == "rtfm-ucf" and cfg2.model == "rtfm" and cfg2.steps == 15000
    rows = {k: (v, o) for k, v, o in cfg2.settings(origins)}
    assert rows["loss"][0] == "rtfm" and rows["batch_size"][0] == 8


def test_a_config_file_with_unknown_keys_is_refused_naming_them(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "rtfm"\nlearning_rate = 0.1\nbatchsize = 3\n')
    with pytest.raises(VadkitError, match=r"bad.toml: unknown setting\(s\) batchsize, learning"):
        read_config_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("model = \n")
    with pytest.raises(VadkitError, match="not a valid TOML config file"):
        read_config_file(broken)
    with pytest.raises(VadkitError, match="config file not found"):
        read_config_file(tmp_path / "none.toml")
    typed = tmp_path / "typed.toml"
    typed.write_text('model = "rtfm"\ntrain = "t.csv"\nsteps = "many"\n')
    with pytest.raises(VadkitError, match="steps must be an integer"):
        TrainConfig.from_sources({"out": "o"}, config=typed)
    with pytest.raises(VadkitError, match="no model given: pass --model"):
        TrainConfig.from_sources({"out": "o", "train": "t.csv"})
    with pytest.raises(VadkitError, match="unknown recipe"):
        TrainConfig.from_sources({"out": "o", "train": "t.csv"}, recipe="nope")


def test_a_runs_config_json_passed_back_gives_the_same_configuration(ds, tmp_path):
    cfg = config(ds, tmp_path / "a", steps=2, batch_order="fixed", seed=3, recipe="rtfm-ucf")
    train(cfg)
    again, _ = TrainConfig.from_sources(
        {"out": str(tmp_path / "b")}, config=tmp_path / "a" / "config.json"
    )
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert again.to_json() == {**saved, "out": str((tmp_path / "b").resolve()), "run_id": None}


# ---------------------------------------------------------------------- batch orders


def _rows(sampler: Sampler, steps: int) -> list[tuple[list[int], list[int]]]:
    return [tuple(r.tolist() for r in sampler.rows(s)) for s in range(steps)]


def test_epoch_shuffle_is_rtfms_loaders_a_pure_function_of_seed_and_step():
    s = Sampler("epoch-shuffle", (7, 9), 3, seed=5)  # epochs: 2 normal, 3 abnormal batches
    rows = _rows(s, 12)
    for cls, per_epoch, n in ((0, 2, 7), (1, 3, 9)):
        for e in range(12 // per_epoch):
            seen = sum((rows[i][cls] for i in range(e * per_epoch, (e + 1) * per_epoch)), [])
            assert len(set(seen)) == len(seen) == per_epoch * 3 and max(seen) < n  # drop_last
    assert rows == _rows(Sampler("epoch-shuffle", (7, 9), 3, seed=5), 12)  # pure
    assert [s.rows(10)[0].tolist()] == [rows[10][0]]  # any step alone, in any order
    assert rows != _rows(Sampler("epoch-shuffle", (7, 9), 3, seed=6), 12)
    epochs = {tuple(rows[2 * e][0] + rows[2 * e + 1][0]) for e in range(6)}
    assert len(epochs) > 1  # a new shuffle every epoch


def test_fixed_is_mgfns_zipped_unshuffled_loaders():
    s = Sampler("fixed", (7, 9), 3, seed=5)
    assert s.steps_per_epoch == 2  # min(7 // 3, 9 // 3)
    rows = _rows(s, 6)
    assert rows[0] == ([0, 1, 2], [0, 1, 2]) and rows[1] == ([3, 4, 5], [3, 4, 5])
    assert rows[2:4] == rows[:2] == rows[4:6]
    assert rows == _rows(Sampler("fixed", (7, 9), 3, seed=99), 6)


def test_an_epoch_order_needs_a_full_batch_of_each_class():
    with pytest.raises(VadkitError, match=r"at least --batch-size 4 .*abnormal \(3\)"):
        Sampler("fixed", (6, 3), 4, seed=0)


def test_an_epoch_order_shards_the_same_global_batch_across_ranks():
    n = 10
    data = TrainingSet.__new__(TrainingSet)
    data.clips = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    data.patches = None
    data.normal, data.abnormal = torch.arange(0, 5), torch.arange(5, 10)
    sampler = make_sampler("epoch-shuffle", data, 4, seed=1)
    gen = torch.Generator()
    whole = data.sample(4, gen, inputs=[CLIP], device="cpu", sampler=sampler, step=3)
    parts = [
        data.sample(4, gen, inputs=[CLIP], device="cpu", shard=(r, 2), sampler=sampler, step=3)
        for r in range(2)
    ]
    for i in range(2):
        got = torch.cat([p[i][CLIP] for p in parts]).flatten()
        assert torch.equal(got, whole[i][CLIP].flatten())
    assert set(whole[1][CLIP].flatten().tolist()) <= set(range(5, 10))


@pytest.mark.parametrize("order", ["epoch-shuffle", "fixed"])
def test_resume_under_an_epoch_order_matches_an_uninterrupted_run(ds, tmp_path, order):
    kw = dict(steps=6, eval_every=2, batch_order=order, model_args={"hidden": 8}, seed=2)
    train(config(ds, tmp_path / "full", **kw))

    def interrupt(e: Event) -> None:
        if e.kind == "step" and e.step == 3:
            raise KeyboardInterrupt

    cut = config(ds, tmp_path / "cut", **kw)
    with pytest.raises(VadkitError, match="interrupted at step 3"):
        train(cut, callback=interrupt)
    train(cut, resume=True)
    a = load_file(str(tmp_path / "full" / "last.safetensors"))
    b = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rand = config(ds, tmp_path / "rand", **{**kw, "batch_order": "random"})
    train(rand)
    c = load_file(str(tmp_path / "rand" / "last.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the order is used


# ---------------------------------------------------------------------- the official protocol


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def test_official_protocol_evaluates_at_mgfns_epoch_cadence_and_labels_best(ds, tmp_path):
    run = tmp_path / "official"
    val = dict(val=str(ds["val"]), annotations=str(ds["annotations"]))
    kw = dict(
        model="mgfn", steps=5, batch_size=2, eval_every=4, protocol="official",
        batch_order="fixed", model_args={"dims": [8, 16, 32], "dim_head": 8}, **val,
    )  # fmt: skip
    notes: list[str] = []
    result = train(
        config(ds, run, **kw), callback=lambda e: e.kind == "note" and notes.append(e.message)
    )
    # one epoch = min(6, 5) // 2 = 2 steps: evaluations at 2, 4, and the last step 5
    log = _log(run)
    assert [r["step"] for r in log] == [2, 4, 5]
    assert all("pr_auc_trapezoid" in r for r in log)
    on_cadence = [r for r in log if r["step"] in (2, 4)]
    best = max(on_cadence, key=lambda r: r["roc_auc"])  # the first of equals
    assert result.best_step == best["step"] and result.best_roc_auc == best["roc_auc"]
    assert result.selection.startswith(f"best on {Path(ds['val']).resolve()} at the official")
    assert "every epoch = every 2 steps" in result.selection
    meta = load_run(run, device="cpu").meta
    assert meta["selection"] == result.selection == meta["validation"]["selection"]
    assert meta["protocol"] == "official" and meta["batch_order"] == "fixed"
    assert any("selected on the validation list" in n for n in notes)


def test_official_protocol_resumes_to_the_uninterrupted_run(ds, tmp_path):
    """Official-cadence evaluations between saves are replayed exactly on resume."""
    val = dict(val=str(ds["val"]), annotations=str(ds["annotations"]))
    kw = dict(
        model="mgfn", steps=6, batch_size=2, eval_every=100, protocol="official",
        batch_order="fixed", model_args={"dims": [8, 16, 32], "dim_head": 8}, **val,
    )  # fmt: skip
    full = train(config(ds, tmp_path / "full", **kw))

    def crash(e: Event) -> None:  # a crash saves nothing: resume replays from the last save
        if e.kind == "step" and e.step == 5:
            raise RuntimeError("crash")

    cut = config(ds, tmp_path / "cut", **kw)
    with pytest.raises(RuntimeError, match="crash"):
        train(cut, callback=crash)
    saved = load_run(tmp_path / "cut", checkpoint="last", device="cpu").meta["step"]
    assert saved in (2, 4)  # 4 only if it became best: eval_every=100 saves nothing else
    resumed = train(cut, resume=True)
    strip = lambda run: [{k: v for k, v in r.items() if k != "seconds"} for r in _log(run)]  # noqa: E731
    assert strip(tmp_path / "cut") == strip(tmp_path / "full")
    assert [r["step"] for r in _log(tmp_path / "full")] == [2, 4, 6]
    assert (resumed.best_step, resumed.best_roc_auc) == (full.best_step, full.best_roc_auc)
    for name in ("last", "best"):
        a = load_file(str(tmp_path / "full" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "cut" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_official_protocol_needs_a_validation_list_and_vadkits_is_unchanged(ds, tmp_path):
    with pytest.raises(VadkitError, match="--protocol official evaluates on the list"):
        train(config(ds, tmp_path / "x", protocol="official"))
    val = dict(val=str(ds["val"]), annotations=str(ds["annotations"]))
    result = train(config(ds, tmp_path / "v", steps=3, eval_every=2, **val))
    assert [r["step"] for r in _log(tmp_path / "v")] == [2, 3]
    assert result.selection.startswith("best roc_auc on") and "every 2 steps" in result.selection


def test_a_recipe_run_records_it_and_notes_a_feature_layout_mismatch(ds, tmp_path):
    flags = {
        "train": str(ds["train"]), "features": str(ds["features"]), "out": str(tmp_path / "r"),
        "steps": 2, "batch_size": 2, "segments": 12, "device": "cpu",
        "model_args": {"hidden": 8},
    }  # fmt: skip
    cfg, _ = TrainConfig.from_sources(flags, recipe="rtfm-sh")
    notes: list[str] = []
    train(cfg, callback=lambda e: e.kind == "note" and notes.append(e.message))
    assert any("recipe rtfm-sh expects 10 crop(s), 2048-d, i3d-r50" in n for n in notes)
    assert any("have 2 crop(s), 32-d, i3d-inception" in n for n in notes)
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["recipe"] == "rtfm-sh" and saved["weight_decay"] == 5e-3
    assert saved["batch_order"] == "epoch-shuffle" and saved["loss"] == "rtfm"
    meta = load_run(tmp_path / "r", device="cpu").meta
    assert meta["recipe"]["name"] == "rtfm-sh"
    assert meta["recipe"]["settings"]["steps"]["value"] == 15000  # the recipe as published


def test_every_recipe_builds_a_valid_configuration():
    for name in RECIPES:
        cfg, origins = TrainConfig.from_sources(
            {"train": "t.csv", "out": "o", "stage": 1}, recipe=name
        )
        cfg.validate()
        assert {k for k, _, _ in cfg.settings(origins)} >= {"lr", "batch_order", "protocol"}
    assert np.isclose(get_recipe("mgfn-xd").values()["steps"], 1000 * (9525 // 16))


# ---------------------------------------------------------------------- the CLI


def _train_has(option: str) -> bool:
    r = run_cli("train", "--help")
    return option in r.output


needs_cli = pytest.mark.skipif(
    not _train_has("--recipe"), reason="vadkit train's --recipe/--config options not applied yet"
)


@needs_cli
def test_cli_train_applies_recipe_config_and_flags_and_prints_where_each_came_from(ds, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(f'features = "{ds["features"]}"\nweight-decay = 1e-4\nsegments = 12\n')
    run = tmp_path / "run"
    r = run_cli(
        "train", "--recipe", "rtfm-ucf", "--config", toml, "--train", ds["train"], "-o", run,
        "--steps", 2, "--batch-size", 2, "--device", "cpu", "--model-arg", "hidden=8",
        "--batch-order", "fixed", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "settings (recipe rtfm-ucf):" in r.stderr
    assert "lr = 0.001  [recipe rtfm-ucf: RTFM option.py default" in r.stderr
    assert "weight_decay = 0.0001  [config " in r.stderr
    assert (
        "steps = 2  [command line]" in r.stderr
        and "batch_order = fixed  [command line]" in r.stderr
    )
    assert r.stderr.count("settings (recipe") == 1
    assert "recipe rtfm-ucf expects 10 crop(s)" in r.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["recipe"] == "rtfm-ucf" and saved["weight_decay"] == 1e-4
    assert saved["loss"] == "rtfm" and saved["batch_order"] == "fixed" and saved["steps"] == 2
    again = run_cli("train", "--config", run / "config.json", "-o", tmp_path / "again", "--json")
    assert again.exit_code == 0, again.output
    assert load_file(str(run / "last.safetensors")).keys()
    a = load_file(str(run / "last.safetensors"))
    b = load_file(str(tmp_path / "again" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same run again, from its config.json
    bad = run_cli("train", "--resume", "-o", run, "--recipe", "rtfm-ucf")
    assert bad.exit_code == 2 and "saved settings" in bad.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('model = "rtfm"\nbatchsize = 3\n')
    r = run_cli("train", "--config", unknown, "--train", ds["train"], "-o", tmp_path / "u")
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "batchsize" in r.output


@needs_cli
def test_cli_official_protocol_labels_the_printed_result(ds, tmp_path):
    r = run_cli(
        "train", "--model", "mgfn", "--train", ds["train"], "--features", ds["features"],
        "-o", tmp_path / "o", "--steps", 2, "--batch-size", 2, "--segments", 12,
        "--device", "cpu", "--model-arg", "dims=[8,16,32]", "--model-arg", "dim_head=8",
        "--val", ds["val"], "-a", ds["annotations"], "--protocol", "official",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    last = r.stdout.strip().splitlines()[-1]
    assert "best ROC AUC" in last and "selected on the validation list (best on " in last
    assert "at the official cadence (every epoch = every 2 steps" in last


def test_rtfm_style_lists_train_with_abnormal_first_and_validate_on_a_shorter_list(tmp_path):
    """RTFM's public lists: `--abnormal-first N` labels the training list; the test list (here
    shorter than N; its labels are unused, the ground truth is --annotations) reads as it is."""
    d = make_dataset(tmp_path / "ds", train=(3, 5), val=(2, 2), t_range=(6, 14))
    feats = Path(d["features"])

    def write_list(split: str) -> Path:
        files = [p for p in feats.glob(f"{split}*.npy") if "_patch" not in p.name]
        files.sort(key=lambda p: ("nor" in p.name, p.name))  # abnormal first, as RTFM's
        out = tmp_path / f"{split}.list"
        out.write_text("".join(f"{p}\n" for p in files))
        return out

    cfg = config(
        d, tmp_path / "run", steps=2, train=str(write_list("train")), features=None,
        abnormal_first=5, val=str(write_list("val")), annotations=str(d["annotations"]),
        model_args={"hidden": 8},
    )  # fmt: skip
    result = train(cfg)  # 5 > the 4 lines of the validation list: no error
    assert result.best_roc_auc is not None
    assert json.loads((tmp_path / "run" / "config.json").read_text())["abnormal_first"] == 5
