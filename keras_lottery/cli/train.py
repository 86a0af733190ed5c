"""`lottery train`, the derived commands (one per method) and `iterate`."""

import click

from keras_lottery import checks
from keras_lottery.spec import methods
from keras_lottery.cli import options

LR_OPTION = click.option(
    "--lr", type=float, help="The constant learning rate [default: the "
    "schedule's last value, 0.001 at batch 128]."
)


def _request(kind, arguments, **fields):
    """The request the flags make, checked before TensorFlow loads."""
    from keras_lottery.spec import requests

    return getattr(requests, kind).from_arguments(arguments, **fields)


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
    request = _request("TrainRequest", dict(
        arch=arch, out=out, dataset=dataset or "cifar10", data_dir=data_dir,
        recipe=recipe, steps=steps, epochs=epochs, batch_size=batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every, seed=seed,
        save_every=save_every, val_split=val_split, **execution))
    from keras_lottery.procedures import fresh

    run = fresh.train(request, verbose=options.verbosity(quiet))
    click.echo(f"finished: {run.path}")


def derived_command(method):
    """The command of a derived method of the registry: what it asks first
    (its parent, k, how much it prunes), then the run's own options, then
    the inherited ones and how it executes."""

    def command(parent, quiet, iteration=None, **rest):
        if iteration is None and method.iteration.taken:
            raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
        request = _request("DeriveRequest", dict(parent=parent, iteration=iteration, **rest),
                           method=method.name)
        from keras_lottery.procedures import derive

        run = derive.derive(request, verbose=options.verbosity(quiet))
        click.echo(f"finished: {run.path}")

    command.__doc__ = method.help
    own = [click.option("--from", "parent", type=options.PATH, help=options.HELP["--from"])]
    if method.iteration.taken:
        own.append(click.option("--iter", "iteration", type=int, help=ITER_HELP[method.prunes]))
    if method.prunes:
        own += options.pruning_options(method)
    if method.constant_lr:
        own.append(LR_OPTION)
    own += options.run_options() + options.inherited_options() + options.execution_option_list()
    return click.command(method.command)(options.apply(options.friendly_errors(command), own))


ITER_HELP = {True: "k: the rewind iteration (a checkpoint the parent saved); for "
                   "finetune, sets the length T - k. Required.",
             False: "k: the iteration to branch from (a checkpoint the parent "
                    "saved). Required."}


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
@options.apply_options(options.PRUNING_OPTIONS)
@options.pruner_option
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
            pruner, min_per_layer, lr, data_dir, seed, out, save_every, quiet,
            **execution):
    """Iterative pruning: R rounds, each pruning the previous round's final
    weights to rate x its density and retraining with --method.

    Re-running the same command skips finished rounds, resumes an
    interrupted one, and adds rounds when --rounds grows.
    """
    method = methods.get(method, pruning=True)
    if iteration is None and method.iteration.taken:
        raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
    if lr is not None and not method.constant_lr:
        raise click.UsageError("--lr applies to finetune and lowlr-rewind only.")
    request = _request("IterateRequest", dict(
        parent=parent, method=method.name, iteration=iteration, rounds=rounds,
        rate=rate, scope=scope, exclude=exclude, pruner=pruner,
        min_per_layer=min_per_layer, layer_rates=layer_rates, lr=lr, out=out, seed=seed, data_dir=data_dir,
        save_every=save_every, **execution))
    from keras_lottery.procedures import chains

    done = chains.iterate(request, verbose=options.verbosity(quiet))
    for run in done:
        click.echo(f"finished: {run.path} (density {checks.percent_shown(run.density)})")


@click.command("run-request", hidden=True)
@click.argument("request")
@options.friendly_errors
def run_request(request):
    """Carry out one request given as JSON: how a study runs its nodes.

    The request is what `keras_lottery.spec.requests.Request.to_dict()`
    gives; it runs as the command it stands for (train, a derived method,
    iterate) with -q.
    """
    import json

    from keras_lottery.spec.requests import Request

    try:
        asked = Request.from_dict(json.loads(request))
    except (ValueError, TypeError, KeyError) as e:
        raise click.BadParameter(f"is not a request ({type(e).__name__}: {e})") from None
    from keras_lottery import procedures

    done = procedures.execute(asked, verbose=options.verbosity(True))
    for run in done if isinstance(done, list) else [done]:
        click.echo(f"finished: {run.path}")
