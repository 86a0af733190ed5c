"""Mask overlap (`kl.mask_overlap`, `lottery masks`), per-layer density
figures (`lottery plot --layers`) and what the analysis tools take (runs,
folders of runs, study files), on LeNet-300-100 and the bundled digits."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.analysis import figures
from keras_lottery.analysis import masks as masks_lib
from keras_lottery.analysis import overlap
from keras_lottery.runs import sources
from keras_lottery.cli import main
from snapshots import snapshot

SMALL = dict(steps=20, batch_size=32, eval_every=1000)
K = 1


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("masks") / "runs"


@pytest.fixture(scope="module")
def made(root):
    base = kl.train("lenet300", dataset="digits", seed=0, verbose=0,
                    out=root / "lenet300" / "train-s0", **SMALL)
    r20 = kl.rewind(base, iteration=K, density=0.2, seed=0, verbose=0,
                    out=root / "lenet300" / "rewind-d20")
    r05 = kl.rewind(r20, iteration=K, density=0.05, seed=0, verbose=0,
                    out=root / "lenet300" / "rewind-d5")
    return base, r20, r05


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """lenet300 again, on 32x32x3 images: another network of the same name."""
    return kl.train("lenet300", dataset="synthetic", steps=6, batch_size=8, seed=0,
                    verbose=0, out=tmp_path_factory.mktemp("other") / "synthetic")


def test_a_mask_overlaps_itself_fully_and_a_disjoint_one_not_at_all():
    rng = np.random.default_rng(0)
    a = {"x": (rng.random((4, 5)) < 0.4).astype("float32"), "y": np.ones(3, "float32")}
    b = {"x": 1 - a["x"], "y": np.zeros(3, "float32")}
    same = {k: overlap.measures(*c) for k, c in overlap.counts(a, a).items()}
    assert all(m["jaccard"] == 1 and m["b_kept_by_a"] == 1 for m in same.values())
    apart = {k: overlap.measures(*c) for k, c in overlap.counts(a, b).items()}
    assert apart["x"]["jaccard"] == 0 and apart["total"]["jaccard"] == 0
    assert apart["total"]["b_kept_by_a"] == 0 and apart["y"]["b_kept_by_a"] is None
    assert overlap.counts(a, b)["total"] == (int(a["x"].sum()) + 3, int(b["x"].sum()), 0, 23)


def test_overlap_of_runs_per_layer_and_total(made):
    base, r20, r05 = made
    result = kl.mask_overlap([r20, r05, base])
    assert result.layers == ["fc_1", "fc_2", "fc_3"]
    nested = result.pairs[(0, 1)]["total"]  # the 5 % mask lies inside the 20 % one
    assert nested["b_kept_by_a"] == 1.0
    assert nested["jaccard"] == pytest.approx(0.25, abs=1e-4)
    assert nested["a_kept_by_b"] == pytest.approx(0.25, abs=1e-4)
    masks = [pruning.get_masks(r.load_model()) for r in (r20, r05)]
    for layer in result.layers:
        a, b = masks[0][layer] != 0, masks[1][layer] != 0
        want = (a & b).sum() / (a | b).sum()
        assert result.pairs[(0, 1)][layer]["jaccard"] == pytest.approx(want, abs=1e-12)
    assert result.matrix("kept")[2][0] == 1.0  # the dense base keeps everything
    assert result.matrix("jaccard")[0][2] == pytest.approx(0.2, abs=1e-4)
    itself = kl.mask_overlap([r05, r05])
    assert all(m["jaccard"] == 1.0 for m in itself.pairs[(0, 1)].values())


def test_folders_of_runs_and_study_files(made, root):
    base, r20, r05 = made
    analysis = root / "lenet300" / "stability-rewind-d20-k1-s0"
    shutil.copytree(r20.path, analysis / "copy-0")
    (analysis / "stability.json").write_text("{}")
    named = [r.path for r in sources.expand(root)]
    assert named == sorted([base.path, r20.path, r05.path])  # not the copy
    study = root.parent / "studies" / "study.toml"  # its root relative to its folder
    study.parent.mkdir()
    study.write_text('[study]\nname = "s"\nroot = "../runs"\n')
    assert [r.path.resolve() for r in sources.expand(study)] == [p.resolve() for p in named]
    assert len(kl.mask_overlap(study).runs) == 3
    # A study file naming no root has the studies' default, runs/<its name>.
    (root.parent / "other.toml").write_text('[study]\nname = "s"\n')
    with pytest.raises(kl.LotteryError, match=r"names the root .*runs/other, which does not exist"):
        sources.expand(root.parent / "other.toml")
    (root.parent / "bad.toml").write_text('[study]\nroot = ""\n')
    with pytest.raises(kl.LotteryError, match="names no root folder"):
        sources.expand(root.parent / "bad.toml")


def test_layer_density_bars_are_the_sparsity_report(made, tmp_path):
    base, r20, r05 = made
    fig = figures.layer_densities([r20, r05], path=tmp_path / "layers.png")
    bars = [p.get_height() for p in fig.axes[0].patches]
    reports = [kl.sparsity_report(r.load_model()) for r in (r20, r05)]
    want = [100 * row.density for report in reports for row in report]
    assert bars == pytest.approx(want)
    # The legend stands beside the bars, not over the last (total) ones.
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1
    assert [r.density for r in masks_lib.layer_densities([r20])[0]] == [r.density for r in reports[0]]
    done = CliRunner().invoke(main, ["plot", "--layers", str(r20.path), str(base.path),
                                     "-o", str(tmp_path / "cli.png")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "cli.png").stat().st_size > 0


def test_layer_densities_of_a_study_file_are_a_bar_per_run_of_its_root(made, root, tmp_path):
    base, r20, r05 = made
    study = tmp_path / "study.toml"
    study.write_text(f'[study]\nname = "s"\nroot = "{root}"\n')
    fig = figures.layer_densities(study, path=tmp_path / "study.png")
    # The groups are layers; each holds one bar per run, the runs in path order.
    ordered = sorted([base, r20, r05], key=lambda r: str(r.path))
    reports = [kl.sparsity_report(r.load_model()) for r in ordered]
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx(
        [100 * row.density for report in reports for row in report])
    done = CliRunner().invoke(main, ["plot", "--layers", str(study), "-o", str(tmp_path / "c.png")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "c.png").stat().st_size > 0


def test_cli_masks_table_json_and_heatmap(made, tmp_path):
    base, r20, r05 = made
    heatmap = tmp_path / "overlap.png"
    done = CliRunner().invoke(main, ["masks", str(r20.path), str(r05.path), "-o", str(heatmap)])
    assert done.exit_code == 0, done.output
    rows = [line.split() for line in done.output.splitlines() if line.startswith(str(r20.path))]
    assert [row[2] for row in rows] == ["total"] and float(rows[0][6]) == pytest.approx(0.25, abs=1e-4)
    assert heatmap.stat().st_size > 0
    done = CliRunner().invoke(main, ["masks", str(r20.path), str(r05.path), "--format", "json"])
    found = json.loads(done.output)
    assert found["layers"] == ["fc_1", "fc_2", "fc_3"]
    assert found["pairs"][0]["layers"]["total"]["b_kept_by_a"] == 1.0
    done = CliRunner().invoke(main, ["masks", str(r20.path), str(r05.path), "--per-layer"])
    assert [line.split()[2] for line in done.output.splitlines()
            if line.startswith(str(r20.path))] == ["fc_1", "fc_2", "fc_3", "total"]


def _edited_arch(run, where):
    shutil.copytree(run.path, where)
    config = json.loads((where / "run.json").read_text())
    config["arch"] = "resnet8"
    (where / "run.json").write_text(json.dumps(config))
    return where


@pytest.mark.parametrize("case, message", [
    ("none", "Error: RUNS (none): need two or more runs"),
    ("other", "are different architectures; compare runs of one architecture"),
    ("renamed", "(lenet300) and {renamed} (resnet8) are different architectures"),
    ("iter", "Error: --iter 7: is not a checkpoint of"),
    ("missing", "does not exist"),
])
def test_cli_masks_bad_input_is_one_error_line(made, other, tmp_path, case, message):
    base, r20, r05 = made
    renamed = _edited_arch(base, tmp_path / "renamed")
    args = {"none": [], "other": [r20.path, other.path],
            "renamed": [base.path, renamed], "iter": [r20.path, r05.path, "--iter", "7"],
            "missing": [r20.path, tmp_path / "nowhere"]}[case]
    before = snapshot(tmp_path), snapshot(r20.path.parent)
    done = CliRunner().invoke(main, ["masks", *map(str, args), "-o", str(tmp_path / "h.png")])
    assert isinstance(done.exception, SystemExit) and done.exit_code == 1, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.output, done.output
    assert message.format(r20=r20.path, renamed=renamed) in errors[0], errors[0]
    assert (snapshot(tmp_path), snapshot(r20.path.parent)) == before
