"""`lottery study`: a paper figure's whole grid of runs from one file."""

import signal
import sys

import click

from keras_lottery.cli import options

FILE = click.argument("file", type=click.Path(dir_okay=False, path_type=str))
IPS_OPTION = click.option(
    "--images-per-second", type=float, help="Training throughput of one run, "
    "for the device-hours [default: an estimate per architecture, measured on "
    "2 CPU cores; see lottery study calibrate].")
ESTIMATE_HINT = ("measure yours with `lottery study calibrate FILE` and pass "
                 "--images-per-second")


@click.group()
def study():
    """Plan, run and summarize a whole study from one TOML file: base
    networks, one-shot and iterative pruning, controls (see
    examples/renda2020-resnet20.toml and examples/demo-digits.toml).

    \b
        lottery study plan FILE      what it would run (writes nothing)
        lottery study run FILE       run it; re-run to resume
        lottery study status FILE    finished / running / ... / pending
        lottery study results FILE   the paper's selection of k, and study.csv
        lottery study cancel FILE    cancel its Slurm jobs
        lottery study calibrate      runs per device worth packing
    """


def _plan(file):
    from keras_lottery.study import planner
    from keras_lottery.study import studyfile

    return planner.expand(studyfile.load(file))


def _hours_line(plan, steps_by_node, ips, what):
    from keras_lottery.study import estimates

    if steps_by_node == {}:
        return f"{what}: 0 (nothing left to train)"
    hours, used = estimates.device_hours(plan, steps_by_node, ips)
    sources = "; ".join(f"{arch} {rate:g} images/s per run ({source})"
                        for arch, (rate, source) in sorted(used.items()))
    hint = "" if ips is not None else f"; {ESTIMATE_HINT}"
    shown = f"{hours:,.1f}" if hours >= 1 else f"{hours:.3f}"
    return f"{what}: {shown} at one run per device, training only: {sources}{hint}"


@study.command()
@FILE
@IPS_OPTION
@options.friendly_errors
def plan(file, images_per_second):
    """Show what FILE's study would run: runs by kind, training steps and
    device-hours. Writes nothing."""
    from keras_lottery.study import state

    found = _plan(file)
    state.check_disk(found)
    counts = found.counts()
    rounds = {n.round for n in found.nodes if n.round}
    click.echo(f"study {file}: root {found.study.root}")
    click.echo(f"  base runs        {counts['base']:>8,}")
    click.echo(f"  one-shot runs    {counts['oneshot']:>8,}")
    chains = ""
    if rounds:
        many = counts["chains"] != 1
        chains = (f"  ({counts['chains']:,} chain{'s' if many else ''} of up to "
                  f"{max(rounds)} round{'s' if max(rounds) != 1 else ''})")
    click.echo(f"  iterative rounds {counts['iterative']:>8,}{chains}")
    click.echo(f"  controls         {counts['control']:>8,}")
    click.echo(f"  in all           {len(found.nodes):>8,}")
    batch = found.study.recipe.batch_size
    click.echo(f"training steps: {found.total_steps:,} ({found.images():,} images at "
               f"batch {batch})")
    click.echo(_hours_line(found, None, images_per_second, "device-hours"))
    _echo_disk(found)


def _echo_disk(found):
    from keras_lottery.study import state

    statuses = state.statuses(found)
    started = [s for s in statuses.values() if s != state.PENDING]
    if started:
        click.echo("on disk: " + _counts_text(statuses))


def _counts_text(statuses):
    from keras_lottery.study import state

    values = list(statuses.values())
    return ", ".join(f"{values.count(s)} {s}" for s in state.STATUSES)


ENGINES = ("local", "ray", "slurm")


@study.command()
@FILE
@click.option("--workers", type=click.IntRange(min=1), help="Runs at once "
              "[default: devices x runs_per_device of the file; more are "
              "spread evenly over the devices]. Local engine only.")
@click.option("--retry-failed", is_flag=True, help="Start failed runs (a NaN "
              "loss, say) again instead of leaving them and their dependents.")
@click.option("--engine", type=click.Choice(ENGINES), default="local",
              show_default=True, help="What starts the runs: local, warm worker processes "
              "on this machine's devices; ray, each a task on a Ray cluster "
              "(pip install 'keras-lottery[ray]'); slurm, Slurm jobs through "
              "submitit, submitted and left to the queue (pip install "
              "'keras-lottery[slurm]'; the file's [slurm] section).")
@click.option("--address", help="The Ray cluster: auto (the one this machine "
              "belongs to), HOST:PORT of its head, ray://HOST:PORT, or local (a new "
              "Ray instance on this machine) [default: RAY_ADDRESS, else the cluster "
              "last started on this machine, else a new local instance].")
@click.option("--process-per-run", is_flag=True, help="Start each run in a process "
              "of its own instead of warm workers (slower: each pays the start-up). "
              "Local engine only.")
@options.friendly_errors
def run(file, workers, retry_failed, engine, address, process_per_run):
    """Run FILE's study: every run in dependency order, longest chain
    first, on its device (locally, in warm worker processes that run one
    run after another). Re-run the same command to
    resume after any interruption; two drivers on one study never train a
    run twice. With --engine slurm the command submits the jobs and
    returns; lottery study status FILE follows them."""

    if address is not None and engine != "ray":
        raise click.UsageError("--address is for --engine ray")
    if (workers is not None or process_per_run) and engine != "local":
        raise click.UsageError("--workers and --process-per-run are for --engine local "
                               "(Ray and Slurm pack runs by the file's runs_per_device)")
    warm = None
    if engine == "local" and not process_per_run:
        from keras_lottery.study.engines import local as engines

        warm = engines.warmed_for(file)
    try:
        return _run(file, workers, retry_failed, engine, address, warm)
    finally:
        if warm is not None:
            warm.close()


def _run(file, workers, retry_failed, engine, address, warm):
    from keras_lottery.study import state

    found = _plan(file)
    state.check_disk(found)
    if engine == "slurm":
        return _submit_slurm(file, found, retry_failed)
    tty = sys.stdout.isatty()

    def progress(*args):
        from keras_lottery.study.progress import Progress

        return Progress(*args, echo=click.echo, tty=tty)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if engine == "ray":
            counts = _run_ray(file, found, address, retry_failed, progress)
        else:
            counts = _run_local(file, found, workers, retry_failed, progress, warm)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(f"done: {counts['finished']} of {len(found.nodes)} runs finished"
               + "".join(f", {counts[s]} {s}" for s in ("failed", "blocked", "pending",
                                                         "resumable", "running")
                         if counts[s]))
    if counts["finished"] < len(found.nodes):
        from keras_lottery.runs import layout

        raise click.ClickException(
            f"{len(found.nodes) - counts['finished']} runs did not finish; see "
            f"lottery study status {file} and the logs under "
            f"{found.study.root / layout.STUDY_LOGS_DIR}; --retry-failed starts failed runs again")


def _run_local(file, found, workers, retry_failed, progress, engine):
    from keras_lottery.study import devices
    from keras_lottery.study.engines import local as engines
    from keras_lottery.study import state
    from keras_lottery.study.scheduler import Scheduler

    names = devices.resolve(found.study.devices)
    state.write(found)
    engine = engine or engines.LocalEngine(warm=False)
    scheduler = Scheduler(found, engine, names,
                          found.study.runs_per_device, workers, retry_failed, progress)
    click.echo(f"study {file}: {len(found.nodes)} runs under {found.study.root}; "
               f"{_counts_text(scheduler.found)}; devices {', '.join(names)}, "
               f"{scheduler.workers} at once")
    return scheduler.run()


def _run_ray(file, found, address, retry_failed, progress):
    from keras_lottery.study.engines import ray as rayengine
    from keras_lottery.study import state

    engine = rayengine.RayEngine(address)
    ray, started = engine.connect()
    try:
        options = engine.resources(ray, found.study.runs_per_device)
        what = (f"{options['num_gpus']:g} GPU each" if "num_gpus" in options
                else "1 CPU each")
        resources = ray.cluster_resources()
        click.echo(f"study {file}: {len(found.nodes)} runs under {found.study.root}; "
                   f"{_counts_text(state.statuses(found))}; Ray cluster of "
                   f"{resources.get('GPU', 0):g} GPUs, {resources.get('CPU', 0):g} "
                   f"CPUs; runs ask {what}")
        return engine.run(found, found.study.runs_per_device, retry_failed, progress)
    finally:
        if started:
            ray.shutdown()


def _submit_slurm(file, found, retry_failed):
    from keras_lottery.study.engines import slurm as slurmengine

    submitted = slurmengine.SlurmEngine().submit(found, retry_failed)
    if not submitted.records:
        click.echo(f"study {file}: nothing to submit ({_counts_text(submitted.found)})")
        return
    runs_count = sum(len(r["nodes"]) for r in submitted.records)
    jobs = sum(len(r["jobs"]) for r in submitted.records)
    waves = len({r["wave"] for r in submitted.records})
    click.echo(f"study {file}: submitted {runs_count} runs in {jobs} Slurm jobs, "
               f"{waves} waves:")
    for record in submitted.records:
        after = f", after {record['after']}" if record.get("after") else ""
        click.echo(f"  wave {record['wave']}: array {record['id']}, "
                   f"{len(record['jobs'])} jobs, {len(record['nodes'])} runs{after}")
    if submitted.left_out:
        click.echo(f"left out {submitted.left_out}: held by another process, or "
                   "after one that is; run this again once it ends")
    click.echo(f"follow them with lottery study status {file}; cancel them with "
               f"lottery study cancel {file}; logs under {submitted.folder}")


def _interrupt(signum, frame):  # a SIGTERM (a cluster's preemption) as Ctrl-C
    raise KeyboardInterrupt


@study.command()
@FILE
@IPS_OPTION
@options.friendly_errors
def status(file, images_per_second):
    """Count FILE's runs by status (finished, running, resumable, failed,
    damaged, blocked, pending), the throughput so far (runs/hour,
    device-hours used) and the device-hours left; name each damaged run and
    why."""
    from keras_lottery.study import state

    found = _plan(file)
    statuses = state.statuses(found)
    width = max(map(len, state.STATUSES))
    values = list(statuses.values())
    click.echo(f"study {file}: {len(found.nodes)} runs under {found.study.root}")
    for name in state.STATUSES:
        click.echo(f"  {name:<{width}}  {values.count(name):>6,}")
    for node in found.nodes:
        if statuses[node.id] == state.DAMAGED:
            click.echo(f"  damaged: {state.damage(found.path(node))}")
    left = {n.id: state.remaining_steps(found, n, statuses[n.id]) for n in found.nodes}
    left = {k: v for k, v in left.items() if v}
    from keras_lottery.study import estimates

    used = estimates.throughput_line(found)
    if used:
        click.echo(used)
    click.echo(_hours_line(found, left, images_per_second, "device-hours left"))
    saved = state.read(found.study.root)
    if saved is not None and saved.get("file_sha256") != found.study.sha256:
        click.echo("the file changed since study.json was written; lottery study run "
                   "adds its new runs")
    if saved is not None and saved.get(state.JOBS):
        from keras_lottery.study.engines import slurm as slurmengine

        for line in slurmengine.describe(found.study.root):
            click.echo(line)


@study.command()
@FILE
@options.friendly_errors
def cancel(file):
    """Cancel FILE's Slurm jobs that are still queued or running (those
    lottery study run --engine slurm submitted). Their runs stop and
    resume when the study is run again."""
    from keras_lottery.study.engines import slurm as slurmengine

    found = _plan(file)
    if not slurmengine.records(found.study.root):
        raise click.ClickException(f"no Slurm jobs recorded for {file} under "
                                   f"{found.study.root}; nothing to cancel")
    ids = slurmengine.cancel(found.study.root)
    if not ids:
        click.echo(f"study {file}: none of its Slurm jobs is still in the queue")
        return
    click.echo(f"study {file}: cancelled {', '.join(ids)}; lottery study run "
               f"{file} --engine slurm submits what is left")


@study.command()
@FILE
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=options.PATH, help="Also draw accuracy "
              "against density (min-max bands, one line per method) to this "
              "image file.")
@options.friendly_errors
def results(file, fmt, output):
    """The paper's selection protocol on FILE's finished runs: for each
    arch, method, one-shot or iterative, and density, the k with the best
    median val_top1 over the seeds, and its median, min and max test top1
    (density a fraction). Also writes ROOT/study.csv, one row per run."""
    from keras_lottery.results import tables as report
    from keras_lottery.study import selection

    found = _plan(file)
    if not found.study.root.is_dir():
        raise click.ClickException(f"no runs of the study under {found.study.root} "
                                   f"yet; run lottery study run {file} first")
    outcomes = selection.outcomes(found, damaged=lambda path, reason: click.echo(
        f"Warning: skipping {path}: {reason}", err=True))
    rows = selection.select(outcomes)
    csv_path = selection.write_csv(found, selection.tidy_rows(found, outcomes))
    click.echo(report.render(rows, selection.COLUMNS, fmt))
    if fmt == "table":
        click.echo(f"wrote {csv_path} ({len(outcomes)} runs)")
    if output is not None:
        from keras_lottery.study import figure

        figure.accuracy_vs_density(rows, output)
        if fmt == "table":
            click.echo(f"wrote {output}")


def _counts(ctx, param, value):
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of "
                                 "integers, e.g. 1,2,4") from None


@study.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--arch", help="[default: FILE's first arch, else lenet300]")
@click.option("--dataset", help="[default: FILE's, else digits]")
@click.option("--steps", type=click.IntRange(min=10), default=200, show_default=True,
              help="Steps each run trains.")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: FILE's "
              "recipe's, else 128]")
@click.option("--runs", "counts", default="1,2,4", show_default=True,
              callback=_counts, help="Runs sharing the device at once, each count "
              "in turn.")
@click.option("--device", default=None, help="cpu or a GPU index [default: "
              "FILE's first device, else the first GPU, else cpu].")
@options.friendly_errors
def calibrate(file, arch, dataset, steps, batch_size, counts, device):
    """Measure training images/s of 1, 2, 4 ... `lottery train` runs
    sharing one device, and suggest runs_per_device."""
    from keras_lottery.study import calibrate as calibrate_lib
    from keras_lottery.study import devices

    data_dir, wanted = None, "auto"
    if file is not None:
        from keras_lottery.study import studyfile

        found = studyfile.load(file)
        arch = arch or found.archs[0]
        dataset = dataset or found.dataset
        batch_size = batch_size or found.recipe.batch_size
        data_dir, wanted = found.data_dir, found.devices
    device = device or devices.resolve(wanted)[0]
    arch, dataset, batch_size = arch or "lenet300", dataset or "digits", batch_size or 128
    click.echo(f"calibrating {arch} on {dataset}, batch {batch_size}, {steps} steps "
               f"per run, device {device}")
    measured = calibrate_lib.measure(counts, arch=arch, dataset=dataset, steps=steps,
                                     batch_size=batch_size, device=device,
                                     data_dir=data_dir, echo=click.echo)
    best = calibrate_lib.suggest(measured)
    one = [m for m in measured if m.runs == min(counts)][0]
    click.echo(f"suggested: runs_per_device = {best} (the fewest runs within "
               f"{calibrate_lib.MARGIN:.0%} of the best total); for lottery study "
               f"plan: --images-per-second {one.total / one.runs:.0f}")
