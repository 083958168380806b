"""What `run` and `lr-find` both build from a recipe, and the one training step they both take:
the model (resolved, so a checkpoint can rebuild it), the objective, AdamW, the autocast precision
with its loss scaler (fp16 needs one), channels-last memory and gradient clipping."""
import contextlib

import torch

from workbench.api.contracts import call_model, capability
from workbench.api.registry import build
from workbench.devices.device import autocast, autocast_dtype, host_memory, memory_hint, out_of_memory
from workbench.errors import WorkbenchError
from workbench.recipe import toml_value
from workbench.train.ema import make_ema
from workbench.train.objective import build_objective, check_mask_source


class Learner:
    """The trainable parts of a recipe on `device`; `step(batch)` is one optimiser step (and EMA update)."""

    def __init__(self, recipe, plugins, task, device):
        tcfg = recipe["train"]
        self.task, self.device, self.grad_clip = task, device, tcfg["grad_clip"]
        # 1. the model, resolved in the recipe (classes from the data) so the checkpoint can rebuild it
        recipe.cfg["model"] = task.configure_model(dict(recipe["model"]))
        name, self.model = build(plugins.models, recipe["model"], where=f"{recipe.source}: [model]")
        self.encoder = recipe["model"].get("encoder")
        self.who = f"model '{name}' (plugin '{plugins.models.plugin_of(name)}')"   # named when it breaks the contract
        check_mask_source(self.model, task.chain)
        self.memory_format = torch.channels_last if tcfg["channels_last"] else torch.contiguous_format
        self.model.to(device, memory_format=self.memory_format)
        self.objective = build_objective(recipe, plugins, default=task.default_loss).to(device)
        if hasattr(task, "objective"):   # a task judged by the objective itself (stylize): the same frozen network
            task.objective = self.objective
        # 2. precision and optimiser
        self.amp_dtype = autocast_dtype(device, tcfg["mixed_precision"], tcfg["cpu_bf16"])
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
        # 3. the average of the weights that validation, best.pt and restore use (None: train.ema = 0)
        self.ema = make_ema(self.model, tcfg["ema"])
        self.judged = self.model if self.ema is None else self.ema.module   # what validation and best.pt rate

    def step(self, batch, forward=None):
        """Forward, loss, backward, clip, optimiser step -> (loss, {term: value}, images); loss is
        None for a non-finite loss, whose step is skipped rather than poisoning the weights.
        `forward(x, mask)` defaults to the model itself (the trainer passes its DDP/compiled one)."""
        forward = forward or (lambda x, mask: call_model(self.model, x, mask))
        x, y = self.task.inputs(batch, self.device)
        x = x.contiguous(memory_format=self.memory_format)
        mask = batch.get("mask")
        with autocast(self.device, self.amp_dtype):
            out = self._checked(forward(x, mask), x, y)
            loss, terms = self.objective(out.float(), y, self.model, mask)
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return None, terms, len(x)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach(), terms, len(x)

    def set_frozen(self, frozen):
        """Freeze a pretrained encoder for the first train.freeze_epochs epochs (lesson 25)."""
        if not self.encoder:
            return
        for p in capability(self.model, "encoder_parameters")():
            p.requires_grad_(not frozen)

    def _checked(self, out, x, y):
        """The model contract at train time: a tensor, and for a restorer the shape of its target."""
        if not isinstance(out, torch.Tensor):
            raise WorkbenchError(f"{self.who} returned {type(out).__name__}, not a tensor; a model's forward returns "
                                 "the restored batch.")
        if self.task.kind in ("restore", "stylize") and out.shape != y.shape:
            raise WorkbenchError(f"{self.who} returned shape {tuple(out.shape)} for an input of {tuple(x.shape)}; a "
                                 f"restorer returns B x 3 x H x W like its target {tuple(y.shape)}.")
        if not out.is_floating_point():
            raise WorkbenchError(f"{self.who} returned a {str(out.dtype).removeprefix('torch.')} tensor; return floats.")
        return out


def check_batch_fits(recipe):
    """Refuse at once a batch whose crops alone (damaged and clean, float32) exceed the machine's memory."""
    data, total = recipe["data"], host_memory()
    side = data["size"] + 2 * data["pad"]
    need = data["batch_size"] * 2 * 3 * side * side * 4
    if total is not None and need > total:
        raise WorkbenchError(f"data.size = {data['size']} with data.batch_size = {data['batch_size']}: one batch's crops "
                             f"take {need / 2**30:.0f} GiB, more than this machine's {total / 2**30:.0f} GiB of memory; "
                             "lower data.size or data.batch_size.")


@contextlib.contextmanager
def model_memory(recipe):
    """Building the model (or the data) ran out of memory: one line naming the model's size keys."""
    try:
        yield
    except Exception as e:
        if out_of_memory(e):
            sizes = ", ".join(f"model.{k} = {toml_value(v)}" for k, v in recipe["model"].items() if k != "type")
            raise WorkbenchError(memory_hint(e, f"the model's size ({sizes or 'its parameters'})")) from e
        raise
