"""Style transfer: a photo in, the same photo in one style image's manner out, in one forward pass
(Johnson et al. 2016: a feed-forward net trained with the Gram-matrix loss of Gatys et al. 2016).

There is no damage: the clean crop is the model's input and the content target both. There is no PSNR
either (a stylizer is meant to change the photo), so validation scores the training objective, lower
is better: of the stylized crops, and, as the honest baseline, of the unstyled photo itself (its
content distance is 0, its style distance is how far the photo is from the style to begin with).
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.api.contracts import capability
from workbench.data.splits import recipe_splits
from workbench.devices.device import autocast
from workbench.errors import WorkbenchError
from workbench.judge.pictures import prepare
from workbench.tasks.pairs import pair_datasets

MIN_VALID = 32   # validation crops at least this wide: a ResNet's layer3 (1/16) then still has 2 x 2 features
BASELINE = "unstyled"   # the report's name for the photo itself, the baseline every stylizer must beat
TITLES = {"damaged": "style image", "restored": "stylized", "clean": "photo"}


class StylizeTask:
    """Photo -> the photo in the style of the recipe's style loss; judged by that objective, lower is better."""

    kind, best_key, default_loss = "stylize", "loss", "style"
    higher_is_better = False
    titles = TITLES

    @staticmethod
    def summary(record):
        valid = record.get("valid", record)
        get = lambda k: valid.get(k, math.nan)
        return (f"train loss {record.get('train_loss', math.nan):.4g}, valid loss {get('loss'):.4g} (style {get('style'):.4g} "
                f"against the unstyled photo's {get('input_style'):.4g}, content {get('content'):.4g})")

    @staticmethod
    def grid_captions(name, photo, stylized, style):
        return f"{name}: photo", "stylized", "style image"

    def __init__(self, recipe, plugins):
        self.chain = chain = recipe.degradation_chain(plugins)
        if chain:   # the content target is the photo: damage would only be painted over, never undone
            names = ", ".join(name for name, _ in chain)
            raise WorkbenchError(f"{recipe.source}: a style loss trains a stylizer, which repaints the photo itself: remove "
                                 f"the [[degradations]] ({names}), or drop the style loss to restore that damage.")
        self.train, self.valid = pair_datasets(recipe, recipe_splits(recipe), [], min_valid=MIN_VALID)
        self.objective = None   # the trainer's own (workbench.train.setup hands it over): one frozen network, not two

    def configure_model(self, spec):
        return spec

    @staticmethod
    def inputs(batch, device):
        """(photo, photo): the clean crop is the input and the content target."""
        photo = batch["clean"].to(device, non_blocking=True)
        return photo, photo

    @torch.no_grad()
    def validate(self, model, loader, device, amp_dtype, keep=4):
        """Mean objective over the validation crops: `loss` (what training minimises), its `style` part (the
        objective of the stylized crop against itself, where every term tying it to the photo is 0), `content`
        (the rest), and `input_style`, the unstyled photo's; also the first `keep` (name, photo, stylized,
        style image) and as many report samples."""
        if self.objective is None:
            raise RuntimeError("StylizeTask.validate needs the training objective (task.objective)")
        style_image = first_style_image(self.objective.losses)
        sums, n, images, samples = dict.fromkeys(("loss", "style", "content", "input_style"), 0.0), 0, [], []
        for batch in loader:
            photo, _ = self.inputs(batch, device)
            with autocast(device, amp_dtype):
                out = model(photo)
            out = out.float().clamp(0, 1)   # what `restore` writes
            for k, v in self.scores(out, photo).items():
                sums[k] += v * len(photo)
            n += len(photo)
            for j in range(len(photo)):
                if len(images) < keep:
                    name = self.valid.source.name(int(batch["index"][j]))
                    style = cover(style_image, *photo.shape[-2:]) if style_image is not None else photo[j].cpu() * 0
                    images.append((name, photo[j].cpu(), out[j].cpu(), style))
                    samples.append(self._sample(name, photo[j:j + 1], out[j:j + 1], style))
        metrics = {k: v / max(n, 1) for k, v in sums.items()}
        return {**metrics, "images": n}, images, samples

    def scores(self, out, photo):
        """{loss, style, content, input_style} of one batch (means over it), as the objective computes them."""
        value = lambda a, b: float(self.objective(a, b)[0])
        loss, style = value(out, photo), value(out, out)
        return {"loss": loss, "style": style, "content": loss - style, "input_style": value(photo, photo)}

    def _sample(self, name, photo, out, style):
        """A report sample: style image | the unstyled photo (the baseline) | stylized | photo, with the scores of both."""
        s = self.scores(out, photo)
        metrics = {"stylized": {k: s[k] for k in ("loss", "style", "content")},
                   BASELINE: {"loss": s["input_style"], "style": s["input_style"], "content": 0.0}}
        return prepare({"name": name, "damaged": style, "restored": out[0].cpu(), "clean": photo[0].cpu(),
                        "baselines": {BASELINE: photo[0].cpu()}, "metrics": metrics, "titles": TITLES})


def first_style_image(losses):
    """The style image of the first loss that has one (capability `style_image`), or None."""
    return next((img for img in (capability(loss, "style_image") for loss in losses) if img is not None), None)


def cover(img, h, w):
    """`img` (3 x H x W) scaled to cover h x w and cut from its middle, to stand beside an h x w photo."""
    scale = max(h / img.shape[-2], w / img.shape[-1])
    size = (max(h, round(img.shape[-2] * scale)), max(w, round(img.shape[-1] * scale)))
    big = F.interpolate(img[None].float().cpu(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    return big[:, top:top + h, left:left + w].clamp(0, 1)


# -- a trained stylizer: what `eval` says of it, and what `grid` draws ----------------------------------
def refuse_eval(where):
    """`eval` measures restorers against damage; a stylizer undoes none, so it says what to use instead."""
    page = Path(where) / "report.html" if Path(where).is_dir() else "its run directory's report.html"
    raise WorkbenchError(f"{where} is a stylizer (style transfer): there is no damage to measure PSNR against. Its validation "
                         f"(the objective of the stylized crops beside the unstyled photo's, lower is better) is in {page}; "
                         f"draw photos beside their stylized copies with `workbench grid {where} --data PHOTOS -o grid.png`, "
                         f"and stylize them with `workbench restore {where} PHOTOS -o OUT`.")


def grid_rows(run_dir, plugins, *, data=(), count=6, device="auto", tile=512):
    """Rows of (photo, stylized, style image) for `workbench grid`: the --data photos or the run's validation
    images, whole, stylized as `restore` does (tiled). The style image comes from the run's style loss; where it
    cannot be built (the image moved, no weights offline) the grid goes on without it, with one warning."""
    from workbench import recipe as recipes
    from workbench.api.registry import build
    from workbench.data.inputs import collect, load
    from workbench.devices import progress
    from workbench.devices.device import pick_device
    from workbench.infer.restore import restore_tensor
    from workbench.runs import checkpoint

    model, state = checkpoint.load_model(run_dir, plugins)
    recipe = recipes.from_dict(state["recipe"], f"{run_dir}/recipe.toml", plugins)
    if data:
        photos = [(name, lambda w=where: load(w)) for name, where in collect(data, verb="draw")]
    else:
        _, (src, idx) = recipe_splits(recipe)   # the very images the run validated on
        photos = [(src.name(i), lambda i=i: src.load(i)) for i in idx]
    style = None
    try:
        stylize = [spec for spec in recipe["losses"] if capability(plugins.losses.get(spec["type"]), "task") == "stylize"]
        losses = [build(plugins.losses, {k: v for k, v in spec.items() if k != "weight"})[1] for spec in stylize[:1]]
        style = first_style_image(losses)
    except WorkbenchError as e:
        progress.say(f"warning: the grid shows no style image: {e}")
    device = pick_device(device)
    rows = []
    for name, read in photos[:count]:
        try:
            photo = read()
        except WorkbenchError as e:
            progress.say(f"warning: skipped {name}: {e}")
            continue
        out = restore_tensor(model, photo, tile=tile, device=device)
        row = [(photo, f"{name}: photo"), (out, "stylized")]
        rows.append(row + ([(style, "style image")] if style is not None else []))
    if not rows:
        raise WorkbenchError(f"no readable photos to draw ({len(photos)} given); check --data.")
    return rows
