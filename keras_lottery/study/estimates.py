"""Throughput estimates and device-hours of a study.

Device-hours count training images only (steps × batch size, evaluation
left out) at one run per device, divided by the training throughput of one
run. Without a measured figure, each architecture's estimate below is used;
all were measured on, or scaled from, a 2-core CPU (the documentation's
benchmarks page), so a GPU study should pass its own, measured with `calibrate`.
"""

from keras_lottery import checks
from keras_lottery.errors import LotteryError

# images/s of one training run at batch 128, and where the figure comes from.
ESTIMATES = {
    "resnet20": (468, "measured on a 2-core CPU; see the docs' benchmarks page"),
    "resnet56": (103, "measured on a 2-core CPU; see the docs' benchmarks page"),
    "resnet110": (52, "ResNet-56's CPU figure scaled by depth, not measured"),
    "resnet8": (844, "measured by study calibrate on a loaded 2-core CPU; "
                "see the docs' benchmarks page"),
    "lenet300": (5429, "measured by study calibrate on digits, a loaded "
                 "2-core CPU; see the docs' benchmarks page"),
    "vgg16": (60, "ResNet-20's CPU figure scaled by multiply-adds, not measured"),
    "vgg16_nofc": (61, "ResNet-20's CPU figure scaled by multiply-adds, not measured"),
    "conv2": (470, "ResNet-20's CPU figure scaled by multiply-adds, not measured"),
    "conv4": (200, "ResNet-20's CPU figure scaled by multiply-adds, not measured"),
    "conv6": (125, "ResNet-20's CPU figure scaled by multiply-adds, not measured"),
}


def throughput(arch, images_per_second=None):
    """(images/s, where it comes from) for one run of `arch`."""
    if images_per_second is not None:
        return checks.number(images_per_second, "images_per_second", above=0,
                             message="expected a positive number of images per second"), "given"
    if arch not in ESTIMATES:
        raise LotteryError(f"no throughput estimate for {arch}; give the images "
                           "per second measured for it", param="images_per_second",
                           value=None)
    return ESTIMATES[arch]


def device_hours(plan, steps_by_node=None, images_per_second=None):
    """(hours, {arch: (images/s, source)}) of training `steps_by_node`
    ({node id: steps}, default every node's) at one run per device."""
    if steps_by_node is None:
        steps_by_node = {n.id: n.steps for n in plan.nodes}
    batch = plan.study.recipe.batch_size
    used, hours = {}, 0.0
    for node_id, steps in steps_by_node.items():
        arch = plan.by_id[node_id].arch
        if arch not in used:
            used[arch] = throughput(arch, images_per_second)
        hours += steps * batch / used[arch][0] / 3600
    return hours, used


def throughput_line(plan):
    """The study's throughput so far, from its runs' run.json: finished runs
    per hour of wall-clock (from the first recorded attempt's start to the
    last run.json written) and the device-hours its runs' attempts took
    (their recorded wall time, each run on one device); "" before any run
    recorded its time."""
    import os

    from keras_lottery.study import state

    finished, device_seconds, starts, ends = 0, 0.0, [], []
    for node in plan.nodes:
        path = plan.path(node) / "run.json"
        config = state.read_config(path) or {}
        timing = config.get("timing")
        if not isinstance(timing, dict) or not timing.get("attempts"):
            continue
        ended = os.path.getmtime(path)
        device_seconds += timing.get("wall", 0.0)
        starts.append(ended - timing.get("wall", 0.0))
        ends.append(ended)
        finished += config.get("status") == "finished"
    if not ends:
        return ""
    span = max(max(ends) - min(starts), 1e-9)
    return (f"throughput: {finished} runs finished, {finished * 3600 / span:,.0f} runs/hour "
            f"over {span / 3600:.3g} h of wall-clock; {device_seconds / 3600:.3g} "
            "device-hours used (the runs' recorded wall time)")
