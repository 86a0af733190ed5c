"""Iterative pruning: an `iterate` chain of rounds, each derived from the
last (`keras_lottery.iterate`)."""

from keras_lottery import checks
from keras_lottery import files
from keras_lottery.procedures import derive as derive_lib
from keras_lottery.procedures import lifecycle
from keras_lottery.procedures import parents
from keras_lottery.runs import layout
from keras_lottery.runs import resolver
from keras_lottery.spec.chainspec import IterateSpec
from keras_lottery.spec.runspec import resolve_parent


def iterate(request, *, verbose=1, callbacks=None):
    """Runs (or finds) the rounds an `IterateRequest` asks for; returns
    their `Run`s. The chain's iterate.json is written once round 1's
    request is known to be valid; refused input leaves nothing."""
    base = parents.open_parent(request.parent, request.root)
    parents.check_precision(base, request.execution.precision)
    request.execution.check_devices()
    inherited = base.spec
    chain = resolver.resolve_study(IterateSpec(
        request.method, resolve_parent(base.path), request.iteration, request.rate,
        request.seed, scope=request.scope or inherited.scope,
        exclude=inherited.exclude if request.exclude is None else request.exclude,
        layer_rates=request.layer_rates, pruner=request.pruner),
        arch=inherited.arch, out=request.out, root=lifecycle.child_root(base, request.root))
    # Round 1's request, checked before the chain's folder is made.
    parents.child_spec(base, _round(request, chain, 1, base)(base))
    made = lifecycle.missing_folders(chain.path)
    if not (chain.path / layout.CHAIN_JSON).exists():
        chain.path.mkdir(parents=True, exist_ok=True)
        files.write_json(chain.path / layout.CHAIN_JSON,
                         dict(chain.spec.to_config(chain.path), seed_drawn=chain.seed_drawn))
    try:
        return _rounds(request, chain, base, verbose, callbacks)
    except BaseException:  # round 1 refused its input: no chain was made
        lifecycle.remove_unused(made, keep=(layout.CHAIN_JSON,))
        raise


def _round(request, chain, index, base):
    """(parent) -> the `DeriveRequest` of round `index` of `chain`."""
    spec = chain.spec
    own = dict(base.spec.layer_densities)
    own = {name: own.get(name, base.spec.target_density or 1.0)
           for name, _ in spec.layer_rates}
    return lambda parent: request.round_request(
        index, parent=parent, density=spec.density(base.density, index),
        layer_densities=spec.layer_densities(own, index),
        out=layout.round_dir(chain.path, index), seed=spec.seed, scope=spec.scope,
        exclude=spec.exclude)


def _rounds(request, chain, base, verbose, callbacks):
    done, previous = [], base
    for index in range(1, request.rounds + 1):
        asked = _round(request, chain, index, base)(previous)
        if verbose:
            print(f"round {index}/{request.rounds}: {request.method} to density "
                  f"{checks.percent_shown(asked.density)}")
        previous = derive_lib.derive(asked, verbose=verbose, callbacks=callbacks)
        done.append(previous)
    return done
