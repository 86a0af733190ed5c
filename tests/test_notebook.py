"""Executes notebooks/quickstart.ipynb top to bottom, as a user would.

The kernel is pinned to the interpreter running pytest (a kernelspec written
for the test, found first through JUPYTER_PATH), imports the same
keras_lottery as the tests, and runs in a temporary folder with TMPDIR there,
so the notebook's `tempfile.mkdtemp` runs land under pytest's tmp_path and
nothing is written into the repository. About a minute on 2 CPU cores.
"""

import json
import os
import pathlib
import site
import sys

import pytest

import keras_lottery

nbclient = pytest.importorskip("nbclient")
import nbformat  # noqa: E402  (a dependency of nbclient)

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
CELL_TIMEOUT_S = 300


def _kernel_env(tmp_path, monkeypatch):
    """Environment for a `python3` kernel running sys.executable."""
    try:
        import ipykernel  # noqa: F401
    except ImportError:
        pytest.fail("nbclient is installed but ipykernel is not: "
                    "pip install '.[test]'")
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher",
                 "-f", "{connection_file}"],
        "display_name": "Python 3 (pytest)",
        "language": "python",
    }))
    # JUPYTER_PATH is searched before the user's and the system's kernels,
    # so a stray user-level `python3` kernel cannot take over.
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        [str(tmp_path / "jupyter")] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]
    ))
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(work / "tmp"))
    # The kernel runs in `work`, so a source checkout (tests run from the
    # repository root without installing) must be put on its path.
    package_parent = pathlib.Path(keras_lottery.__file__).resolve().parent.parent
    site_dirs = list(getattr(site, "getsitepackages", list)())
    site_dirs.append(site.getusersitepackages())
    installed = {pathlib.Path(p).resolve() for p in site_dirs}
    if package_parent not in installed:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(package_parent)] + [p for p in [env.get("PYTHONPATH")] if p]
        )
    return work, env


def _execute(nb, tmp_path, monkeypatch):
    work, env = _kernel_env(tmp_path, monkeypatch)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute(env=env)
    return work


def _outputs(cell):
    """(all text a code cell showed, the MIME types it displayed)."""
    text, mimes = [], set()
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            text.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            mimes.update(out["data"])
            text.append(out["data"].get("text/plain", ""))
    return "".join(text), mimes


def _cell(nb, start):
    found = [c for c in nb.cells
             if c.cell_type == "code" and c.source.lstrip().startswith(start)]
    assert len(found) == 1, f"expected one code cell starting {start!r}"
    return found[0]


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                "commit the notebook with outputs cleared"
            )


def test_quickstart_runs_top_to_bottom(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # A last cell, added here only, reports where the kernel ran.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys, json\n"
        "print(json.dumps({'python': sys.executable, 'package': kl.__file__, "
        "'workdir': str(WORKDIR)}))"
    ))
    work = _execute(nb, tmp_path, monkeypatch)

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    for c in code:
        assert not [o for o in c.outputs if o["output_type"] == "error"]

    where = json.loads(_outputs(code[-1])[0])
    assert where["python"] == sys.executable
    assert (pathlib.Path(where["package"]).resolve()
            == pathlib.Path(keras_lottery.__file__).resolve())
    # Runs went to a temporary folder, not to ./runs.
    assert pathlib.Path(where["workdir"]).resolve().is_relative_to(work.resolve())
    assert not (work / "runs").exists()

    # Part A: checkpoints at exact iterations, a 20 % sparsity report, the
    # comparison, the plain export.
    text, _ = _outputs(_cell(nb, "BATCH, EPOCHS"))
    assert "checkpoint_iter_23.weights.h5" in text
    assert "checkpoint_iter_final.weights.h5" in text
    text, _ = _outputs(_cell(nb, "kl.prune(model, 0.2)"))
    assert "total" in text and "0.2000" in text
    text, _ = _outputs(_cell(nb, "rewound = kl.masked(plain)"))
    assert "rewound: iteration 23" in text and "retrained: iteration 230" in text
    text, _ = _outputs(_cell(nb, 'print(f"dense'))
    for label in ("dense", "not retrained", "rewound to k=23"):
        assert label in text
    text, _ = _outputs(_cell(nb, "deployable = kl.strip(rewound)"))
    assert "MaskedDense" not in text and "zero kernel weights: 80.0%" in text

    # Part B: one finished train run and six derived ones, tabled and plotted.
    text, _ = _outputs(_cell(nb, "runs = [base] + children"))
    assert "final_top1" in text
    for name in ("train-s0", "rewind-k20-d20-s0", "rewind-lr-k20-d5-s0",
                 "finetune-k20-d5-s0"):
        assert name in text
    text, _ = _outputs(_cell(nb, "columns = ("))
    assert "top1_median" in text
    for method in ("train", "rewind", "rewind_lr", "finetune"):
        assert f" {method} " in text
    for start in ("plot.accuracy_vs_density(runs", "plot.accuracy_vs_step",
                  "plot.accuracy_vs_density([own"):
        _, mimes = _outputs(_cell(nb, start))
        assert "image/png" in mimes, f"{start}: no figure displayed"

    # Part C: own data, recipe and network through train and iterate.
    text, _ = _outputs(_cell(nb, "rng = np.random.default_rng(0)"))
    assert "(2,) 2" in text and "adam 0.0012 60" in text
    text, _ = _outputs(_cell(nb, "own = kl.train(network"))
    assert "\nmlp-" in "\n" + text  # filed under its architecture's name
    for line in ("round 1: density 0.800", "round 3: density 0.512"):
        assert line in text
    excluded = [row for row in text.splitlines() if " 1.0000 " in f"{row} "]
    assert len(excluded) == 1  # the output layer, unpruned


def test_a_failing_cell_fails(tmp_path, monkeypatch):
    """The harness reports an error raised in any cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("x / 0  # deliberately broken")]
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ZeroDivisionError"):
        _execute(nb, tmp_path, monkeypatch)
