"""The benchmark scripts run end to end, as their README commands say.

Smoke tests only: tiny model, one repetition, no timing asserted (the
figures live in benchmarks/RESULTS.md). They keep the one-command benchmark
and the GPU script runnable, the latter on a machine without TensorFlow.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
TINY = ["--arch", "resnet8", "--reps", "1", "--steps", "1", "--warmup", "1",
        "--pipeline-steps", "3"]


def _run(cmd, env=None, timeout=300):
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_throughput_script_reports_targets_and_rebuilds_its_tables(tmp_path):
    raw, table = tmp_path / "r.json", tmp_path / "r.md"
    _run([sys.executable, str(BENCH / "throughput.py"), *TINY,
          "--sections", "train", "--configs", "masked,plain,eval_masked,pipeline",
          "--json", str(raw), "--markdown", str(table)], env=_env())

    payload = json.loads(raw.read_text())
    assert payload["environment"]["backend"] == "tensorflow"
    for name in ("masked", "plain", "eval_masked", "pipeline"):
        assert payload["configs"][name]["median"] > 0
    assert set(payload["checks"]) == {"masked / plain (training)",
                                      "input pipeline / masked training"}
    assert payload["projection"]["hours"]["masked"] > 0
    text = table.read_text()
    assert "| check |" in text and "≥ 0.97×" in text and "≥ 5.0×" in text
    assert "Projected full run (71,108 steps" in text

    rebuilt = tmp_path / "again.md"
    _run([sys.executable, str(BENCH / "throughput.py"), "--report-only",
          str(raw), "--markdown", str(rebuilt)], env=_env())
    assert rebuilt.read_text() == text


def test_gpu_script_runs_under_jax_without_tensorflow(tmp_path):
    # The device machine has JAX but no TensorFlow: a stand-in package that
    # refuses to import makes any TensorFlow dependency fail here too.
    blocked = tmp_path / "no_tf" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        'raise ImportError("TensorFlow is not on the device machine")\n')
    out = tmp_path / "out"
    _run(["bash", str(BENCH / "gpu_jax.sh"), "run"], env=_env(
        SKIP_INSTALL="1", OUT=str(out), PYTHON=sys.executable,
        PYTHONPATH=str(blocked.parent), ARCH="resnet8", REPS="1", STEPS="1",
        WARMUP="1", PIPELINE_STEPS="3",
        CONFIGS="masked,masked_fp16,masked_pipeline,eval_masked,pipeline"))

    payload = json.loads((out / "gpu-resnet8.json").read_text())
    assert payload["environment"]["backend"] == "jax"
    assert "tensorflow" not in payload["environment"]["versions"]
    # Without a GPU, fp16 is left out rather than failing the run.
    assert set(payload["configs"]) == {"masked", "masked_pipeline",
                                       "eval_masked", "pipeline"}
    hours = payload["projection"]["hours"]
    assert hours["masked"] > 0 and hours["masked_pipeline"] > 0
    assert "at `masked` speed" in (out / "gpu-resnet8.md").read_text()


def test_thinning_script_compares_thinned_and_masked_resnet56(tmp_path):
    raw, table = tmp_path / "t.json", tmp_path / "t.md"
    _run([sys.executable, str(BENCH / "thinning.py"), "--quick",
          "--json", str(raw), "--markdown", str(table)], env=_env())

    payload = json.loads(raw.read_text())
    assert set(payload["seconds"]) == {"masked", "A5", "B5", "A5/8", "B5/8"}
    for times in payload["seconds"].values():
        assert times["inference"][0] > 0 and times["train"][0] > 0
    # ResNet-56's 126.0M multiply-accumulates; thinning at level 5 removes some.
    assert payload["flops"]["masked"] == 126_009_984
    assert payload["flops"]["B5"] < payload["flops"]["A5"] < payload["flops"]["masked"]
    assert payload["flops"]["A5"] <= payload["flops"]["A5/8"]
    text = table.read_text()
    assert "| B5 | " in text and "| B5/8 | " in text and "FLOP ratio" in text
    assert "Target met (speed-up ≥ 0.8 × FLOP ratio), channels as pruned: inference" in text
    assert "channels in multiples of 8: inference" in text


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_backends_script_measures_masked_and_plain_on_each_backend(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    raw, table = tmp_path / "b.json", tmp_path / "b.md"
    _run([sys.executable, str(BENCH / "backends.py"), "--smoke", "--backends", backend,
          "--json", str(raw), "--markdown", str(table)], env=_env())

    payload = json.loads(raw.read_text())
    [child] = payload["runs"][backend]
    assert child["environment"]["backend"] == backend  # KERAS_BACKEND reached it
    [row] = payload["backends"]
    assert row["backend"] == backend and row["framework"] == child["environment"]["versions"][backend]
    assert row["masked"] > 0 and row["plain"] > 0
    assert row["ratio"] == pytest.approx(row["masked"] / row["plain"])
    assert row["fastest_ratio"] == pytest.approx(max(row["masked_rates"]) / max(row["plain_rates"]))
    assert row["met"] in ("yes", "no", "unclear (noise)")
    assert f"| {backend} | {row['framework']} | " in table.read_text()


def test_backends_script_gives_each_framework_one_thread_when_asked(tmp_path):
    raw = tmp_path / "b.json"
    _run([sys.executable, str(BENCH / "backends.py"), "--smoke", "--single-thread",
          "--backends", "tensorflow", "--json", str(raw)], env=_env())

    payload = json.loads(raw.read_text())
    threads = payload["runs"]["tensorflow"][0]["environment"]["threads"]
    assert threads["OMP_NUM_THREADS"] == threads["TF_NUM_INTRAOP_THREADS"] == "1"
    assert "intra_op_parallelism_threads=1" in threads["XLA_FLAGS"]
    assert payload["settings"]["single_thread"]


def test_backends_report_flags_a_slow_mask_and_lists_missing_backends(tmp_path, monkeypatch):
    bench = _bench_module("backends")
    rates = {"tensorflow": ([500, 300, 480], [490, 290, 500]),
             "jax": ([180, 100, 170], [200, 110, 180]),
             "torch": ([90, 300, 95], [100, 290, 100])}

    def measure(backend, args, scratch):
        masked, plain = rates[backend]
        return {"configs": {"masked": {"rates": masked}, "plain": {"rates": plain}},
                "environment": {"backend": backend, "cpu": "cpu", "cores": 2,
                                "versions": {"python": "3", "keras": "3",
                                             backend: "1.0"}}}

    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "installed", lambda backend: backend != "torch")
    raw, table = tmp_path / "b.json", tmp_path / "b.md"
    bench.main(["--json", str(raw), "--markdown", str(table)])

    payload = json.loads(raw.read_text())
    assert payload["skipped"] == ["torch"]
    rows = {row["backend"]: row for row in payload["backends"]}
    # Paired: the median of the per-repetition ratios, not the ratio of medians.
    assert rows["tensorflow"]["paired"] == pytest.approx(500 / 490)
    assert rows["tensorflow"]["ratio"] == pytest.approx(480 / 490)
    assert rows["tensorflow"]["fastest_ratio"] == pytest.approx(500 / 500)
    assert rows["tensorflow"]["met"] == "yes" and rows["jax"]["met"] == "no"
    assert rows["jax"]["paired"] == pytest.approx(100 / 110)
    text = table.read_text()
    assert ("| jax | 1.0 | 170, 180 | 180, 200 | 0.94× | 0.91× | 0.90× | "
            "0.90, 0.91, 0.94 | **no** |") in text
    assert "| torch | not installed |" in text
    assert "Fastest masked network here: **tensorflow** (500 images/s" in text

    # The two estimates disagree: one paired repetition of three is fast.
    monkeypatch.setattr(bench, "installed", lambda backend: backend == "torch")
    bench.main(["--json", str(raw)])
    [row] = json.loads(raw.read_text())["backends"]
    assert row["paired"] == pytest.approx(0.95) and row["fastest_ratio"] == pytest.approx(300 / 290)
    assert row["met"] == "unclear (noise)"

    monkeypatch.setattr(bench, "installed", lambda backend: False)
    with pytest.raises(SystemExit, match="^Error: none of the backends asked for is installed"):
        bench.main([])
