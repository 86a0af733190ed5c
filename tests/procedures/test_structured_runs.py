"""Filter pruning through the procedures (issue 27): a structured rewind,
LR rewind and fine-tune of a tiny ResNet-56, its random control, the
original code's names for the same, run.json's record, the command line and
a study file's levels; bad input is one line with nothing written."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery.cli import main
from keras_lottery.runs import layout
from keras_lottery.sparse import structured
from keras_lottery.study import planner
from keras_lottery.study import studyfile
from snapshots import snapshot

SMALL = dict(dataset="synthetic", steps=6, batch_size=8, checkpoint_iters=[0, 3, 6],
             eval_every=6, verbose=0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return kl.train("resnet56", out=tmp_path_factory.mktemp("structured") / "base",
                    seed=0, **SMALL)


def _filters_kept(masks, name):
    return int(np.count_nonzero(masks[name].reshape(-1, masks[name].shape[-1]).any(axis=0)))


@pytest.mark.parametrize("procedure", [kl.rewind, kl.rewind_lr, kl.finetune])
def test_each_method_prunes_filters_and_records_them(base, procedure, tmp_path):
    run = procedure(base, iteration=3, filters="resnet56-A", level=2, seed=1, verbose=0,
                    out=tmp_path / procedure.__name__)
    config = json.loads((run.path / layout.RUN_JSON).read_text())
    assert (config["filters"], config["level"], config["pruner"]) == (
        "resnet56-A", 2, "l1-filters")
    assert config["target_density"] is None
    masks = kl.get_masks(run.load_model())
    want = structured.structured_masks(base.load_model("final"), "resnet56-A", level=2)
    assert all(np.array_equal(masks[k], want[k]) for k in want)
    # 1 − 0.9² of 16 filters, rounded as the original: 3 of them go.
    assert _filters_kept(masks, "conv_2") == 13
    assert run.density == pytest.approx(kl.density(run.load_model()))
    assert run.density < 1


def test_the_random_control_removes_as_many_filters_at_random(base, tmp_path):
    l1 = kl.rewind(base, iteration=3, filters="resnet56-B", level=1, seed=2,
                   out=tmp_path / "l1", verbose=0)
    control = kl.random_prune(base, iteration=3, filters="resnet56-B", level=1, seed=2,
                              out=tmp_path / "random", verbose=0)
    assert control.spec.pruner == "random-filters"
    mine, theirs = (kl.get_masks(r.load_model()) for r in (control, l1))
    assert control.density == l1.density
    assert all(_filters_kept(mine, k) == _filters_kept(theirs, k) for k in ("conv_2", "conv_40"))
    assert not np.array_equal(mine["conv_2"], theirs["conv_2"])


def test_the_originals_names_are_the_same_runs(base, tmp_path):
    named = kl.rewind(base, iteration=3, pruning_method="prune_resnet56_A_2", seed=1,
                      out=tmp_path / "named", verbose=0)
    assert (named.spec.filters, named.spec.level) == ("resnet56-A", 2)
    dense = kl.rewind(base, iteration=3, pruning_method="prune_all_to_global_50", seed=1,
                      verbose=0, out=tmp_path / "global")
    assert (dense.spec.target_density, dense.spec.pruner) == (0.5, "magnitude")
    z = kl.rewind(base, iteration=3, pruning_method="zprune_all_to_global_50", seed=1,
                  verbose=0, out=tmp_path / "z")
    assert z.spec.pruner == "zscore" and z.density == pytest.approx(0.5, abs=1e-5)
    conv = kl.rewind(base, iteration=3, pruning_method="prune_global_20", seed=1,
                     verbose=0, out=tmp_path / "conv")
    assert (conv.spec.pruner, dict(conv.spec.pruner_options)) == ("conv-global", {"remove": 0.2})
    masks = kl.get_masks(conv.load_model())
    assert masks["dense"].all() and masks["proj_2_2"].all()  # conv_k only
    convs = [m for k, m in masks.items() if k.startswith("conv_")]
    kept = sum(int(m.sum()) for m in convs) / sum(m.size for m in convs)
    assert kept == pytest.approx(0.8, abs=1e-5)
    with pytest.raises(kl.LotteryError, match="says density 0.5, but density=0.3"):
        kl.rewind(base, iteration=3, pruning_method="prune_all_to_global_50", density=0.3)


def test_the_command_line_and_its_bad_input(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [
        "rewind", "--from", str(base.path), "--iter", "3", "--filters", "resnet56-B",
        "--level", "1", "--seed", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs/resnet56/rewind-k3-resnet56-B-l1-s0").is_dir()
    before = snapshot(tmp_path)
    for args, code, message in [
        (["--filters", "resnet57-A", "--level", "1"], 1,
         "--filters resnet57-A: is no filter-pruning configuration (did you mean resnet56-A?)"),
        (["--filters", "resnet56-A", "--level", "0"], 1, "--level 0: expected a level"),
        (["--filters", "conv_2=1.5", "--level", "1"], 1,
         "--filters conv_2=1.5: layer 'conv_2' has 1.5; a fraction of its filters"),
        (["--filters", "conv_3=0.5", "--level", "1"], 1,
         "--filters conv_3=0.5: the channels of layer 'conv_3' reach 'conv_3_add' (Add)"),
        (["--filters", "dense=0.5", "--level", "1"], 1,
         "--filters dense=0.5: layer 'dense' is a MaskedDense: only a convolution"),
        (["--filters", "resnet56-A"], 1, "--filters resnet56-A: needs a level"),
        ([], 1, "--density: give a density (the fraction of prunable weights kept), or "
                "filters and level"),
    ]:
        result = CliRunner().invoke(main, ["rewind", "--from", str(base.path), "--iter", "3",
                                           *args])
        assert result.exit_code == code, (args, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and errors[0].startswith(f"Error: {message}"), result.output
        assert snapshot(tmp_path) == before


def test_a_study_file_has_filters_and_levels(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text("[base]\narch = 'resnet56'\ndataset = 'synthetic'\nsteps = 6\nseeds = [0]\n"
                    "[oneshot]\nmethods = ['rewind', 'finetune']\niters = [3]\n"
                    "filters = ['resnet56-A', 'resnet56-B']\nlevels = [1, 2, 3]\n"
                    "[controls]\nrandom = { iters = [3], filters = 'resnet56-B', levels = [1] }\n")
    plan = planner.expand(studyfile.load(path))
    structured_nodes = [n for n in plan.nodes if n.filters is not None]
    assert len(structured_nodes) == 2 * 2 * 3 + 1
    node = plan.by_id["resnet56/rewind-k3-resnet56-B-l2-s0"]
    assert (node.filters, node.level, node.density) == ("resnet56-B", 2, None)
    assert (node.request["filters"], node.request["level"]) == ("resnet56-B", 2)
    assert "resnet56/random-k3-resnet56-B-l1-s0" in plan.by_id
    path.write_text(path.read_text().replace("levels = [1, 2, 3]\n", "levels = [0]\n"))
    with pytest.raises(kl.LotteryError, match=r"\[oneshot\] levels: expected a list of levels"):
        studyfile.load(path)
    path.write_text("[base]\narch = 'resnet56'\nseeds = [0]\n[oneshot]\nmethods = ['rewind']\n"
                    "iters = [0]\ndensities = [50]\nfilters = 'resnet56-A'\nlevels = [1]\n")
    with pytest.raises(kl.LotteryError, match="give densities, or filters and levels"):
        studyfile.load(path)


def test_lottery_thin_says_when_odd_filter_counts_would_slow_training(base, tmp_path):
    pruned = kl.rewind(base, iteration=3, filters="resnet56-A", level=1, seed=0,
                       out=tmp_path / "a1", verbose=0)
    exact = CliRunner().invoke(main, ["thin", str(pruned.path), "-o", str(tmp_path / "a.keras")])
    assert exact.exit_code == 0, exact.output
    (note,) = [line for line in exact.output.splitlines() if line.startswith("note:")]
    assert "lost their multiple of 8 filters" in note, note
    assert note.endswith("to train it, thin with --multiple 8")
    kept = CliRunner().invoke(main, ["thin", str(pruned.path), "-o", str(tmp_path / "b.keras"),
                                     "--multiple", "8"])
    assert kept.exit_code == 0, kept.output
    assert "note:" not in kept.output
    assert (tmp_path / "a.keras").is_file() and (tmp_path / "b.keras").is_file()
