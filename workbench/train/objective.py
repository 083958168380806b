"""The training objective: a recipe's [[losses]] summed with their weights, each term logged."""
from torch import nn

from workbench.images import masks
from workbench.errors import WorkbenchError
from workbench.api.registry import build


class Objective(nn.Module):
    """Weighted sum of loss modules; forward returns (total, {term: float}) for logging."""

    def __init__(self, terms):
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.losses = nn.ModuleList([loss for _, _, loss in terms])

    def forward(self, output, target, model=None, mask=None):
        """`model` and the batch's `mask`: a model that learns where the damage is adds its
        mask_loss as the term `mask` (workbench.images.masks); other models never see the mask."""
        total, logged = 0.0, {}
        for name, weight, loss in zip(self.names, self.weights, self.losses):
            value = loss(output, target)
            total = total + weight * value
            logged[f"loss/{name}"] = value.detach()
            logged.update({f"loss/{k}": v for k, v in getattr(loss, "terms", {}).items()})
        if mask is not None and masks.learns_mask(model):
            value = masks.mask_loss(model, mask.to(output.device, non_blocking=True))
            total = total + value
            logged["loss/mask"] = value.detach()
        return total, logged


def build_objective(recipe, plugins, default="l1"):
    """One Objective from the recipe's [[losses]] (a plain `default` loss when it names none).

    `weight` is read here, not passed to the loss: a loss class may set `default_weight`.
    """
    specs = recipe["losses"] or [{"type": default}]
    terms, seen = [], {}
    for i, spec in enumerate(specs):
        spec = dict(spec)
        factory = plugins.losses.get(spec.get("type", ""))
        weight = spec.pop("weight", getattr(factory, "default_weight", 1.0))
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise WorkbenchError(f"{recipe.source}: [[losses]] #{i + 1}: weight must be a number >= 0, got {weight!r}.")
        name, loss = build(plugins.losses, spec, where=f"{recipe.source}: [[losses]] #{i + 1}")
        seen[name] = seen.get(name, 0) + 1
        terms.append((name if seen[name] == 1 else f"{name}#{seen[name]}", float(weight), loss))
    return Objective(terms)
