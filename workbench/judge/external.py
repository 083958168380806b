"""Models judged beside a run: published restorers (`eval --baseline FILE`, `--weights FILE`), each fed
what it was made for, and the check that it fits the damage being judged.

A workbench restorer sees the damaged image at full size (a super-resolution one, the bicubic-upsampled
low-res image, fast.ai lesson 25); a published super-resolution net enlarges the low-res image itself (its
`upscale`), so it is fed the very low-res image the damage was made from, as the bicubic baseline is: that is
honest only where the whole damage is one fixed downsample of the net's own factor.
"""
import math

import numpy as np

from workbench.api.contracts import capability
from workbench.errors import WorkbenchError
from workbench.runs.weightfile import describe, load_weights, tiling_note


def _damage(chain):
    return " -> ".join(repr(d) for _, d in chain) or "no damage"


def feeder(model, chain, who):
    """fn(clean, damaged) -> the image `model` restores, after checking that it fits the damage of `chain`."""
    if capability(model, "takes_mask") and not any(capability(d, "reports_mask") for _, d in chain):
        raise WorkbenchError(f"{who} fills holes it is told about, but this damage ({_damage(chain)}) reports no mask of "
                             "them; judge it with an inpainting recipe (e.g. --recipe inpaint).")
    up = int(capability(model, "upscale"))
    if up == 1:
        return lambda clean, damaged: damaged
    scale = math.prod(int(capability(d, "scale_factor")) for _, d in chain)
    if scale != up:
        shrinks = f"shrinks {scale}x" if scale > 1 else "does not shrink the image"
        raise WorkbenchError(f"{who} enlarges {up}x, but this damage ({_damage(chain)}) {shrinks}: judge it on a x{up} "
                             "downsample (the superres recipe is x2, superres-x4 is x4)"
                             + (f", or give a x{scale} model." if scale > 1 else "."))
    if len(chain) != 1 or capability(chain[0][1], "is_random") is not False:
        raise WorkbenchError(f"{who} enlarges the low-res image itself, which only a damage of one fixed downsample gives; "
                             f"this one is {_damage(chain)}.")
    name, deg = chain[0]
    shrink = capability(deg, "shrink")

    def feed(clean, damaged):
        # the damage's own low-res image: `damaged` is it, upsampled (a fixed downsample ignores the generator)
        low = shrink(clean, np.random.default_rng(0))
        if low is None:
            raise WorkbenchError(f"degradation '{name}' shrinks {scale}x but its shrink() gives no low-res image for {who}.")
        return low
    return feed


def baselines(files, chain, plugins, *, device, tile, taken=(), warn=True):
    """{row name: fn(clean, damaged, mask) -> image of the clean image's size} for published weights files,
    each run on what it was made for; a file that does not fit this damage is one line naming it."""
    from workbench.infer.restore import restore_tensor

    found = {}
    for path in files:
        model = load_weights(path, plugins)
        label = describe(path, model)
        who = f"--baseline {label}"
        feed, masked = feeder(model, chain, who), capability(model, "takes_mask")
        if warn:
            tiling_note(model, tile, who)
        name, n = label, 2
        while name in found or name in taken:
            name, n = f"{label} ({n})", n + 1

        def fn(clean, damaged, mask, model=model, feed=feed, masked=masked, who=who):
            out = restore_tensor(model, feed(clean, damaged), mask=mask if masked else None, tile=tile, device=device)
            if out.shape != clean.shape:
                raise WorkbenchError(f"{who} returned {tuple(out.shape)} for a clean image of {tuple(clean.shape)}.")
            return out
        found[name] = fn
    return found


def open_restorer(run_dir, plugins, *, weights, recipe_spec, overrides, which):
    """(model, state, recipe, who) to judge: a run's checkpoint on its own recipe's damage (changed by --set), or a
    published weights file on the damage of the recipe `recipe_spec` names; `who` names it in messages."""
    from workbench import recipe as recipes
    from workbench.runs import checkpoint

    if weights is None:
        if recipe_spec:
            raise WorkbenchError(f"--recipe goes with --weights; the run {run_dir} is judged on its own recipe's damage "
                                 "(change it with --set).")
        model, state = checkpoint.load_model(run_dir, plugins, which=which)
        if checkpoint.task_of(state, plugins) == "classify":
            raise WorkbenchError(f"{run_dir} is a classifier run; `workbench eval` judges restorers.")
        # --set changes the damage to judge at (say, JPEG quality 10 for a model trained on 10-50).
        return model, state, recipes.from_dict(state["recipe"], f"{run_dir}/recipe.toml", plugins, overrides), str(run_dir)
    if run_dir is not None:
        raise WorkbenchError(f"give a run directory or --weights, not both ({run_dir} and --weights {weights}).")
    model = load_weights(weights, plugins)
    who = f"--weights {describe(weights, model)}"
    if not recipe_spec:
        up = capability(model, "upscale")
        hint = f"--recipe superres{'' if up == 2 else f'-x{up}'} for this x{up} model" if up > 1 else "--recipe dejpeg"
        raise WorkbenchError(f"{who}: a weights file does not say what damage it undoes; name the recipe whose damage to "
                             f"judge it on with --recipe (a name or a .toml file), e.g. {hint}.")
    recipe = recipes.load(recipe_spec, plugins, overrides)
    return model, {"epoch": None, "recipe": recipe.cfg}, recipe, who
