"""`lottery train`, the derived commands (one per method) and `iterate`."""

import click

from keras_lottery import methods
from keras_lottery.commands import options

# The CLI's longer help for each derived method (methods.py has one line).
HELP = {
    "rewind": """Weight rewinding: prune the parent's final weights, then
    retrain from its iteration k (weights, BN statistics, momentum and LR
    from k) for T - k steps.""",
    "rewind_lr": """LR rewinding: prune the parent's final weights and
    retrain them with the LR schedule replayed from iteration k, for T - k
    steps.""",
    "finetune": """Fine-tuning: prune the parent's final weights and train
    on at a constant LR for T - k steps (ending at 2T - k).""",
    "lowlr_rewind": """Control: low-LR weight rewinding. Weights, BN
    statistics and momentum from iteration k with the new mask (as rewind),
    trained T - k steps at a constant LR.""",
    "random": """Control: random pruning. A uniformly random mask with
    exactly the requested density (among the parent's survivors), then
    weight rewinding from iteration k.""",
    "reinit": """Control: random reinitialization. The parent's magnitude
    mask with freshly initialized weights, trained the full T steps from
    step 0 (no --iter).""",
    "branch": """Branching: continue a copy of the parent from iteration k.
    Its whole state there (masks, weights, BN statistics, momentum,
    iteration) is trained on, pruning nothing, for T - k steps with this
    run's --seed for the data order. Branches with different seeds are the
    copies that lottery stability compares.""",
}
LR_OPTION = click.option(
    "--lr", type=float, help="The constant learning rate [default: the "
    "schedule's last value, 0.001 at batch 128]."
)


def _execution(kwargs):
    return {name: kwargs.pop(name) for name in
            ("jit_compile", "mixed_precision", "steps_per_execution", "strategy")}


@click.command()
@click.option("--arch", default="resnet20", show_default=True,
              help="Architecture: resnet20, resnet56, resnet110, vgg16_nofc "
              "(the paper's), vgg16, lenet300, conv2, conv4, conv6 (the "
              "lottery-ticket paper's), the tiny resnet8; or your own: a "
              "saved FILE.keras, or package.module:function returning a "
              "Keras model.")
@click.option("--val-split", type=int, help="Hold out this many test images "
              "as a validation set (val_top1) and report test metrics on the "
              "rest [default: the paper's 2000 on CIFAR, else 0; 0 turns it "
              "off]. Derived runs inherit it.")
@click.option("--recipe", help="A preset (renda2020 [default], "
              "frankle2019-lenet, frankle2019-conv2|conv4|conv6, openlth-lenet) "
              "or a .toml file of recipe fields; the flags below override it.")
@options.recipe_options
@options.execution_options
@options.friendly_errors
def train(arch, val_split, recipe, dataset, data_dir, steps, epochs, batch_size,
          checkpoint_iters, eval_every, seed, out, save_every, quiet,
          **execution):
    """Train a network from scratch with the paper's recipe (or --recipe)."""
    from keras_lottery import procedures

    run = procedures.train(
        arch, out=out, dataset=dataset or "cifar10", data_dir=data_dir,
        recipe=recipe, steps=steps, epochs=epochs, batch_size=batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every, seed=seed,
        save_every=save_every, val_split=val_split,
        verbose=options.verbosity(quiet), **_execution(execution),
    )
    click.echo(f"finished: {run.path}")


def derived_command(method):
    """The command of a derived method of the registry."""

    def command(parent, iteration, quiet, **rest):
        from keras_lottery import procedures

        if iteration is None and method.iteration is not None:
            raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
        run = procedures.PROCEDURES[method.name](
            parent, iteration=iteration, verbose=options.verbosity(quiet), **rest,
        )
        click.echo(f"finished: {run.path}")

    command.__doc__ = HELP[method.name]
    command = options.friendly_errors(command)
    command = options.execution_options(options.recipe_options(command))
    iter_help = ("k: the rewind iteration (a checkpoint the parent saved); "
                 "for finetune, sets the length T - k. Required, except by "
                 "reinit." if method.prunes else "k: the iteration to branch "
                 "from (a checkpoint the parent saved). Required.")
    own = [
        click.option("--from", "parent", type=options.PATH,
                     help="Parent run directory [default: the single finished "
                     "train run under ./runs]."),
        click.option("--iter", "iteration", type=int, help=iter_help),
    ]
    if method.prunes:
        own.append(click.option(
            "--density", required=True, callback=options.density,
            help="Percent of all prunable weights to keep, absolute (80 keeps "
            "80 %; write 0.5% for half a percent)."))
    command = options.apply(command, own)
    if method.prunes:
        command = options.pruning_options(command)
    if method.constant_lr:
        command = LR_OPTION(command)
    return click.command(method.command)(command)


DERIVED = [derived_command(methods.METHODS[name]) for name in methods.DERIVED]


@click.command()
@click.option("--from", "parent", type=options.PATH,
              help="Base run [default: the single finished train run under "
              "./runs].")
@click.option("--method", default="rewind", show_default=True,
              callback=lambda ctx, param, value: options.method(value),
              help="What each round does: "
              f"{', '.join(methods.METHODS[m].command for m in methods.PRUNING)}.")
@click.option("--iter", "iteration", type=int, help="k of every round "
              "(not for reinit).")
@click.option("--rounds", type=click.IntRange(min=1), required=True,
              help="Number of pruning rounds.")
@click.option("--rate", type=float, default=0.8, show_default=True,
              help="Fraction of the remaining weights each round keeps; "
              "round i has density rate^i (0.8, 0.64, 0.512, ...).")
@click.option("--layer-rate", "layer_rates", multiple=True,
              callback=options.layer_rates, help="With --scope layerwise: "
              "LAYER=RATE, a rate of its own for a layer (repeatable), e.g. "
              "fc_3=0.9 prunes LeNet's output layer at half the rate.")
@options.pruning_options
@LR_OPTION
@click.option("--data-dir", type=options.PATH,
              help="Where the parent's dataset files are now.")
@click.option("--seed", type=int, help="Seed of every round [default: drawn "
              "and recorded].")
@click.option("--out", type=options.PATH,
              help="Study directory; rounds go to OUT/round-<i> [default: "
              "runs/<arch>/iterate-<method>-k<k>-r<rate>-s<seed>].")
@click.option("--save-every", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Resume-state interval in steps.")
@click.option("-q", "--quiet", is_flag=True, help="One line per evaluation.")
@options.execution_options
@options.friendly_errors
def iterate(parent, method, iteration, rounds, rate, layer_rates, scope, exclude,
            lr, data_dir, seed, out, save_every, quiet, **execution):
    """Iterative pruning: R rounds, each pruning the previous round's final
    weights to rate x its density and retraining with --method.

    Re-running the same command skips finished rounds, resumes an
    interrupted one, and adds rounds when --rounds grows.
    """
    from keras_lottery import procedures

    method = methods.get(method, pruning=True)
    if iteration is None and method.iteration is not None:
        raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
    if lr is not None and not method.constant_lr:
        raise click.UsageError("--lr applies to finetune and lowlr-rewind only.")
    done = procedures.iterate(
        parent, method=method.name, iteration=iteration, rounds=rounds,
        rate=rate, scope=scope, exclude=exclude, layer_rates=layer_rates, lr=lr,
        out=out, seed=seed, data_dir=data_dir,
        save_every=save_every, verbose=options.verbosity(quiet),
        **_execution(execution),
    )
    for run in done:
        click.echo(f"finished: {run.path} (density {run.density:.4g})")
