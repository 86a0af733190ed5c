"""The Ray engine on a cluster of two Ray nodes made on this machine
(`ray.cluster_utils.Cluster`, one CPU each): the tiny study runs on both
nodes, in warm workers that each run several runs, and equals the local
engine's study bit for bit."""

import logging
import os
import re

import pytest

from keras_lottery.study import planner
from keras_lottery.study import state
from keras_lottery.study import studyfile
from keras_lottery.study.engines import ray as rayengine
from tiny_study import assert_same_study
from tiny_study import make_folder

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # CI has no network to report to
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_the_tiny_study_on_two_ray_nodes_in_warm_workers_equals_the_local_one(
        two_nodes, tmp_path_factory, reference_study):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    folder = make_folder(tmp_path_factory, "ray-nodes")
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    counts = rayengine.RayEngine().run(plan)
    assert counts[state.FINISHED] == 5, counts
    assert_same_study(folder, reference_study[0])
    # Each log's line: "$ lottery ...  # host H, Ray node N, device cpu, worker PID".
    heads = [state.log_path(plan, n).read_text().splitlines()[0] for n in plan.nodes]
    nodes = {re.search(r"Ray node (\w+)", head).group(1) for head in heads}
    workers = {re.search(r"worker (\d+)$", head).group(1) for head in heads}
    assert len(nodes) == 2, heads  # runs ran on both nodes
    assert len(workers) < len(heads), heads  # a warm worker ran several runs
