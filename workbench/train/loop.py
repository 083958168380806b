"""The training engine: a recipe in, a trained restorer in a run directory out.

AdamW with a one-cycle schedule (Smith 2018), as the lesson trains; validation after every epoch;
`last.pt` (everything a resume needs) and `best.pt` written atomically. Randomness of the data
is a function of (seed, epoch, index) and the torch RNG state is checkpointed, so a resumed run
ends exactly as an uninterrupted one. Ctrl-C or SIGTERM saves `last.pt` after the current step
(mid-epoch: it also records the step and the epoch's running loss) and the resume picks up there.
"""
import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from workbench.api.contracts import call_model
from workbench.data import EpochSampler, make_loader, train_loader
from workbench.data.pairs import decode_skipped, warn_unreadable
from workbench.devices import distributed, progress
from workbench.devices.device import memory_hint, out_of_memory, pick_device
from workbench.errors import WorkbenchError, first_line
from workbench.images.grid import save_grid
from workbench.runs import lock, rundir
from workbench.tasks import make_task
from workbench.train.interrupt import StopSignals
from workbench.train.setup import Learner, check_batch_fits, model_memory
from workbench.train.state import CheckpointState, set_rng_state

MAX_BAD_STEPS = 10   # consecutive non-finite losses before the run stops instead of skipping
SHOW_SKIPPED = 5     # unreadable files named in the end-of-run summary; the rest are counted


@dataclass
class Run:
    """What event plugins see of a live run."""

    dir: Path
    recipe: object
    model: torch.nn.Module
    device: torch.device
    epochs: int
    start_epoch: int = 0
    rank: int = 0
    world: int = 1
    task: str = "restore"
    history: list = field(default_factory=list)
    skipped: list = field(default_factory=list)   # sorted names of unreadable images skipped so far


def train(recipe, plugins, *, out=None, device="auto", resume=None, progress=True):
    """Train `recipe`; returns the run directory. `resume` continues a run directory's last.pt."""
    device = pick_device(device)
    rank, world, device = distributed.setup(device)
    try:
        with StopSignals(announce=progress and rank == 0) as stop:
            check_batch_fits(recipe)
            with model_memory(recipe):
                trainer = _Trainer(recipe, plugins, device, rank, world, progress, stop)
            return trainer.fit(out, resume)
    finally:
        distributed.teardown()


class _Stop(Exception):
    """Raised inside the loop once a stop was requested and last.pt holds the state to resume."""


class _Trainer(CheckpointState):
    def __init__(self, recipe, plugins, device, rank, world, progress, stop):
        self.recipe, self.plugins, self.device, self.rank, self.world, self.stop = recipe, plugins, device, rank, world, stop
        self.progress = progress and rank == 0
        tcfg, data = recipe["train"], recipe["data"]
        if tcfg["epochs"] < 1:
            raise WorkbenchError(f"{recipe.source}: train.epochs must be 1 or more, got {tcfg['epochs']}.")
        torch.manual_seed(recipe["recipe"]["seed"])   # same initial weights on every rank and every run
        # 1. data
        self.task = make_task(recipe, plugins)
        self.loader, self.sampler = train_loader(self.task.train, batch_size=data["batch_size"], workers=data["workers"],
                                                 rank=rank, world=world)
        valid_sampler = EpochSampler(len(self.task.valid), shuffle=False)
        self.valid_loader = make_loader(self.task.valid, valid_sampler, batch_size=data["batch_size"], workers=0)
        self.steps = len(self.loader) if tcfg["steps_per_epoch"] <= 0 else min(len(self.loader), tcfg["steps_per_epoch"])
        # 2. model, objective, optimiser: as lr-find builds them (workbench.train.setup)
        self.learner = Learner(recipe, plugins, self.task, device)
        self.model, self.opt, self.amp_dtype, self.scaler = (self.learner.model, self.learner.opt, self.learner.amp_dtype,
                                                              self.learner.scaler)
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if world > 1 else self.model
        self.ema = self.learner.ema
        # Compiled for training only: validation crops vary in size and would recompile each time.
        self.forward = torch.compile(self.ddp) if tcfg["compile"] else self.ddp
        self.compiled_once = not tcfg["compile"]
        # 3. schedule
        # +1: OneCycleLR wraps around if stepped as many times as total_steps.
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=tcfg["lr"], total_steps=tcfg["epochs"] * self.steps + 1)
        self.best = -math.inf
        self.saved = (0, 0)  # (epochs, steps into the next epoch) in last.pt: what an interruption keeps
        self.partial = {}    # the running loss sums of an epoch resumed in its middle
        self.bad = 0         # consecutive non-finite losses, counted across epoch boundaries
        self._skipped = {}   # reason -> name of every unreadable image a batch passed over
        self._samples = []   # the last validation's images, for report.html

    def _opening(self, run_dir, start, first_step):
        """One line before the first step: device and precision, data, steps, and where it all goes."""
        data, tcfg = self.recipe["data"], self.recipe["train"]
        precision = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "float32"
        precision += f", EMA of the weights {tcfg['ema']:g}" if tcfg["ema"] else ""
        ranks = f" x {self.world} processes" if self.world > 1 else ""
        images = len(np.unique(self.task.train.indices))
        done = f", from step {start * self.steps + first_step}" if start or first_step else ""
        epochs = f"{tcfg['epochs']} epoch{'s' * (tcfg['epochs'] != 1)}"
        return (f"{self.recipe.name} on {self.device}{ranks} ({precision}): {images} training images in {data['size']}-px "
                f"crops, batch {data['batch_size']}; {len(self.task.valid)} validation images; {epochs} x {self.steps} "
                f"steps = {tcfg['epochs'] * self.steps} steps{done} -> {run_dir}")

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, out, resume):
        with contextlib.ExitStack() as held:
            return self._fit(out, resume, held)

    def _fit(self, out, resume, held):
        tcfg = self.recipe["train"]
        start = first_step = 0
        made = None   # a new run directory: whether this command made the folder (removed if nothing is saved)
        if resume is not None:
            run_dir = Path(resume)
            if self.rank == 0:
                held.enter_context(lock.holding(run_dir))
            start, first_step = self.saved = self._load_state(run_dir)
            if start >= tcfg["epochs"]:
                raise WorkbenchError(f"{run_dir} already finished all {tcfg['epochs']} epochs; extend it with "
                                     f"--resume {run_dir} --set train.epochs=N (N > {start}).")
            if self.rank == 0:
                rundir.write_recipe(run_dir, self.recipe)   # a --set train.epochs=N extension, before any epoch
        elif self.rank == 0:
            run_dir, made = rundir.new_run_dir(self.recipe.name, out, held)
            rundir.write_recipe(run_dir, self.recipe)
        else:
            run_dir = Path(out) if out else None
        if self.progress:
            tqdm.write(self._opening(run_dir, start, first_step))
        self.run = Run(run_dir, self.recipe, self.model, self.device, tcfg["epochs"], start, self.rank, self.world, self.task.kind)
        try:
            metrics = self._epochs(start, first_step)
        except BaseException as e:
            nothing_saved = made is not None and self.saved == (0, 0)
            if nothing_saved:   # only what this command wrote, and none of it worth keeping
                rundir.discard(run_dir, made)
            if isinstance(e, (_Stop, KeyboardInterrupt)):
                self._report_interruption(run_dir, saved_now=isinstance(e, _Stop), removed=nothing_saved)
                raise SystemExit(130) from None
            if self.rank == 0 and out_of_memory(e):
                raise WorkbenchError(memory_hint(e, "data.batch_size (now {}) or data.size (now {}), or model.widths".format(
                    self.recipe["data"]["batch_size"], self.recipe["data"]["size"]))) from e
            raise
        self._hook("on_run_end", run=self.run, metrics=metrics)
        if self.rank == 0 and self.run.skipped:
            names = self.run.skipped
            more = ", ..." if len(names) > SHOW_SKIPPED else ""
            tqdm.write(f"warning: skipped {len(names)} unreadable image(s): {', '.join(names[:SHOW_SKIPPED])}{more}", file=sys.stderr)
        if self.rank == 0:
            from workbench.judge.report import write_report

            write_report(run_dir, self._samples)
        if self.progress:
            tqdm.write(f"Finished: {self.task.summary(metrics)}. Run directory: {run_dir}")
        return run_dir

    def _epochs(self, start, first_step):
        tcfg, metrics = self.recipe["train"], {}
        self._hook("on_run_start", run=self.run)
        for epoch in range(start, tcfg["epochs"]):
            self.learner.set_frozen(epoch < tcfg["freeze_epochs"])
            train_metrics = self._train_epoch(epoch, first_step if epoch == start else 0)
            metrics = self._end_epoch(epoch, train_metrics)
            if epoch + 1 < tcfg["epochs"] and self._stop_requested():
                raise _Stop   # signalled during validation: last.pt already holds this epoch
        return metrics

    def _train_epoch(self, epoch, first_step=0):
        self.model.train()
        self.sampler.set_epoch(epoch, skip=first_step)
        totals, n_steps = (self.partial.get("totals", {}), self.partial.get("steps", 0)) if first_step else ({}, 0)
        log = {k: list(self.partial.get("log", {}).get(k, [])) if first_step else [] for k in ("loss", "lr")}  # per step
        n_images, t0 = 0, time.perf_counter()
        bar = progress.bar(total=self.steps, initial=first_step, desc=f"epoch {epoch + 1}/{self.run.epochs}", unit="step",
                           enabled=self.progress, leader=self.rank == 0)
        batches, step = iter(self.loader), first_step
        if first_step:
            # Creating the loader's iterator draws from the torch RNG; the checkpoint's state was
            # taken after that draw, so it is restored only now.
            set_rng_state(self.partial["rng"])
        while step < self.steps:
            if self._stop_requested():
                bar.close()
                self._save_mid_epoch(epoch, step, totals, n_steps, log)
                raise _Stop
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception:
                # A signal sent to the whole process group also stops the DataLoader's workers;
                # the flag says this is an interruption, not a broken loader: save and stop.
                if self.stop.requested:
                    continue
                raise
            step += 1
            self._note_skipped(batch)
            loss, terms, n = self.learner.step(batch, self._forward)
            log["lr"].append(self.sched.get_last_lr()[0])
            log["loss"].append(None if loss is None else float(loss))
            if loss is None:
                # Skipped rather than poisoning the weights; give up if it keeps happening. The
                # count runs on across epochs: short epochs must not reset a diverged run forever.
                self.bad += 1
                if self.bad >= MAX_BAD_STEPS:
                    raise WorkbenchError(self._diverged(f"{self.bad} non-finite losses in a row at epoch {epoch + 1}"))
                self.sched.step()
                bar.update()
                continue
            self.bad = 0
            self.sched.step()
            n_images += n
            n_steps += 1
            for k, v in {"loss": loss, **terms}.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            rate = n_images * self.world / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{log['loss'][-1]:.4f}", img_s=f"{rate:.1f}")
            bar.update()
        bar.close()
        seconds = time.perf_counter() - t0
        out = {f"train_{k}" if k == "loss" else k: distributed.all_mean(v / max(n_steps, 1), self.device) for k, v in totals.items()}
        return {**out, "images_per_s": n_images * self.world / max(seconds, 1e-9), "seconds": seconds,
                "lr": self.sched.get_last_lr()[0], "step_loss": log["loss"], "step_lr": log["lr"]}

    def _forward(self, x, mask):
        # call_model passes the mask only to a model that takes it (an inpainter told where the holes are).
        if self.compiled_once:
            return call_model(self.forward, x, mask)
        try:   # compilation happens at the first call; a missing compiler or backend shows here
            out = call_model(self.forward, x, mask)
        except Exception as e:
            first = first_line(e)
            raise WorkbenchError(f"train.compile = true failed ({first}); set train.compile = false to train without it.") from e
        self.compiled_once = True
        return out

    def _end_epoch(self, epoch, train_metrics):
        # A finite loss can still come with NaN/Inf gradients (checked on every rank: DDP keeps their weights equal).
        self._require_finite(epoch)
        record = {"epoch": epoch + 1, **train_metrics}
        if self.rank == 0:
            self.learner.judged.eval()
            valid, images, self._samples = self.task.validate(self.learner.judged, self._noting(self.valid_loader), self.device,
                                                              self.amp_dtype)
            record["valid"] = valid
            if self.run.skipped:
                record["skipped"] = self.run.skipped
            self._hook("on_validation_end", run=self.run, epoch=epoch + 1, metrics=valid, images=images)
            rundir.append_metrics(self.run.dir, record)        # before last.pt: a resume trims it
            with self.stop.saving():
                self._save(epoch + 1, valid)
            save_grid(self.run.dir, images, getattr(self.task, "grid_captions", None))
            if self.progress:
                tqdm.write(f"epoch {epoch + 1}/{self.run.epochs}: {self.task.summary(record)}")
        distributed.barrier()
        self.run.history.append(record)
        self._hook("on_epoch_end", run=self.run, epoch=epoch + 1, metrics=record)
        return record

    def _note_skipped(self, batch):
        """Learn the unreadable files a batch passed over (maybe in a worker): warn once, count them."""
        for reason, name in decode_skipped(batch).items():
            if reason not in self._skipped:
                self._skipped[reason] = name
                warn_unreadable(reason)
                self.run.skipped = sorted(self._skipped.values())

    def _noting(self, loader):
        for batch in loader:
            self._note_skipped(batch)
            yield batch

    def _hook(self, name, **kw):
        if self.rank != 0:
            return
        for impl in getattr(self.plugins.pm.hook, name).get_hookimpls():
            try:
                impl.function(**{k: kw[k] for k in impl.argnames})
            except WorkbenchError:   # already one line that names the thing (a tracker's missing package)
                raise
            except Exception as e:
                raise WorkbenchError(f"plugin '{impl.plugin_name}' failed in {name}: {type(e).__name__}: {e}") from e
