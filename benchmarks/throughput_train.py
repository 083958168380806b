"""Training-step speed: the workbench's trainer against a hand-written loop, and FLOP rates.

Both loops train the same U-Net from the same weights on the same batches, already in memory, so
the ratio is the trainer's own overhead (progress bar, loss bookkeeping, the non-finite check,
gradient clipping, interruption checks). Measurements alternate between the two loops and take
the median of several rounds, so that a machine shared with other work slows both alike.
"""
import statistics
import time

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from workbench import recipe as recipes
from workbench.api import registry as plugin_manager
from workbench.api.registry import build
from workbench.data import EpochSampler, make_loader
from workbench.devices.device import autocast
from workbench.train.interrupt import StopSignals
from workbench.train.loop import Run, _Trainer


def in_memory_trainer(recipe="superres", *, size=64, batch=None, n_batches=6, overrides=(), real_loader=False):
    """A real `_Trainer` for `recipe` (batch None: the recipe's own) whose loader is a list of ready
    batches -> (trainer, batches); with `real_loader`, it keeps the recipe's own DataLoader instead."""
    plugins = plugin_manager.load([])
    sets = [f"data.size={size}", "train.epochs=1", f"train.steps_per_epoch={n_batches}", *overrides]
    sets += [] if batch is None else [f"data.batch_size={batch}"]
    sets += [] if real_loader else ["data.workers=0"]
    r = recipes.load(recipe, plugins, sets)
    trainer = _Trainer(r, plugins, torch.device("cpu"), 0, 1, False, StopSignals(announce=False))
    batches = []
    if not real_loader:
        loader = make_loader(trainer.task.train, EpochSampler(len(trainer.task.train), shuffle=True, seed=0),
                             batch_size=r["data"]["batch_size"], drop_last=True)
        while len(batches) < n_batches:   # a tiny data set may give fewer batches per pass than asked
            batches += list(loader)[: n_batches - len(batches)]
        trainer.loader = batches
    trainer.steps = min(n_batches, len(trainer.loader))
    # Stepped once per batch and pass, the recipe's one-cycle schedule would run out; same shape, longer.
    trainer.sched = torch.optim.lr_scheduler.OneCycleLR(trainer.opt, max_lr=r["train"]["lr"], total_steps=10**7)
    trainer.run = Run(None, r, trainer.model, trainer.device, 1)
    return trainer, batches


def images_per_s(trainer, passes=1):
    """Training images/s of `trainer` over `passes` epochs, after one warm-up epoch."""
    trainer._train_epoch(0)
    batch = trainer.recipe["data"]["batch_size"]
    t0 = time.perf_counter()
    for epoch in range(1, passes + 1):
        trainer._train_epoch(epoch)
    return passes * trainer.steps * batch / (time.perf_counter() - t0)


def hand_loop(trainer, batches):
    """The minimal PyTorch loop over the same model definition, weights, optimiser and data: -> step function."""
    r = trainer.recipe
    _, model = build(trainer.plugins.models, r["model"], where="hand loop")
    model.load_state_dict(trainer.model.state_dict())
    model.to(memory_format=trainer.learner.memory_format).train()
    opt = torch.optim.AdamW(model.parameters(), lr=r["train"]["lr"], weight_decay=r["train"]["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["train"]["lr"], total_steps=10**7)
    pairs = [(b["damaged"].contiguous(memory_format=trainer.learner.memory_format), b["clean"]) for b in batches]
    clip = r["train"]["grad_clip"]   # the recipe's clipping is part of the update, so both loops do it

    def one_pass():
        for x, y in pairs:
            with autocast(trainer.device, trainer.amp_dtype):
                out = model(x)
            loss = F.l1_loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
    one_pass.model = model
    return one_pass


def trainer_vs_hand_loop(recipe="superres", *, size=64, batch=None, n_batches=6, rounds=5, overrides=()):
    """Images/s of both loops (median of `rounds` alternating passes) and their ratio."""
    trainer, batches = in_memory_trainer(recipe, size=size, batch=batch, n_batches=n_batches, overrides=overrides)
    hand = hand_loop(trainer, batches)
    batch = trainer.recipe["data"]["batch_size"]
    images = batch * n_batches
    timed = {"workbench": [], "hand": []}
    passes = {"workbench": lambda: trainer._train_epoch(0), "hand": hand}
    for name in passes:   # warm-up: first-call allocations and kernel selection
        passes[name]()
    for _ in range(rounds):
        for name, run in passes.items():
            t0 = time.perf_counter()
            run()
            timed[name].append(images / (time.perf_counter() - t0))
    wb, hd = statistics.median(timed["workbench"]), statistics.median(timed["hand"])
    return {"recipe": recipe, "size": size, "batch": batch, "amp": str(trainer.amp_dtype or "float32"),
            "channels_last": trainer.learner.memory_format == torch.channels_last, "workbench_img_s": round(wb, 2),
            "hand_img_s": round(hd, 2), "ratio": round(wb / hd, 3), "rounds": rounds}


def matmul_peak(dtype=torch.float32, sizes=(2048, 4096), repeats=4):
    """FLOP/s of large square matmuls (the best over `sizes` and `repeats`): the practical peak of
    this CPU for `dtype`. A practical, not a theoretical peak: convolutions can beat it (see below)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def step_flops(model, x, y, amp_dtype):
    """FLOPs of one training step (forward and backward) as torch.utils.flop_counter counts them:
    direct convolution arithmetic, 2 per multiply-add. oneDNN may run 3x3 convolutions with fewer
    multiplications (Winograd), so an achieved rate can exceed the matmul peak."""
    with FlopCounterMode(display=False) as counter:
        with autocast(torch.device("cpu"), amp_dtype):
            out = model(x)
        F.l1_loss(out.float(), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


# (name, channels_last, autocast dtype, torch.compile)
VARIANTS = [("fp32", False, None, False), ("fp32 channels_last", True, None, False),
            ("bf16 autocast", False, torch.bfloat16, False), ("bf16 autocast channels_last", True, torch.bfloat16, False)]
COMPILED = [("fp32 channels_last compiled", True, None, True), ("bf16 channels_last compiled", True, torch.bfloat16, True)]


def unet_variants(*, size=64, batch=16, steps=4, rounds=3, compile_too=False, model_spec=None, peak_sizes=(2048, 4096)):
    """Images/s and achieved FLOP rate of one U-Net training step per memory format / precision /
    compilation, measured round-robin; FLOP rate as a fraction of the matmul peak of its dtype."""
    from workbench_plugins.unet import UNet

    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    peaks = {None: matmul_peak(torch.float32, peak_sizes), torch.bfloat16: matmul_peak(torch.bfloat16, peak_sizes)}
    runs = {}
    for name, cl, amp, compiled in VARIANTS + (COMPILED if compile_too else []):
        torch.manual_seed(0)
        model = UNet(**(model_spec or {}))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)   # off the identity start, whose zero layers are atypical
        fmt = torch.channels_last if cl else torch.contiguous_format
        model.to(memory_format=fmt).train()
        xin = x.contiguous(memory_format=fmt)
        flops = step_flops(model, xin, y, amp)
        net = torch.compile(model) if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(net=net, opt=opt, xin=xin, amp=amp):
            with autocast(torch.device("cpu"), amp):
                out = net(xin)
            loss = F.l1_loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t0 = time.perf_counter()
        for _ in range(3 if compiled else 2):
            step()
        runs[name] = {"step": step, "flops": flops, "amp": amp, "warmup_s": time.perf_counter() - t0, "rates": []}
    for _ in range(rounds):
        for run in runs.values():
            t0 = time.perf_counter()
            for _ in range(steps):
                run["step"]()
            run["rates"].append(batch * steps / (time.perf_counter() - t0))
    base = statistics.median(runs["fp32"]["rates"])
    rows = []
    for name, run in runs.items():
        rate = statistics.median(run["rates"])
        achieved = run["flops"] * rate / batch
        rows.append({"variant": name, "size": size, "batch": batch, "img_s": round(rate, 2), "vs_fp32": round(rate / base, 3),
                     "flops_per_step": run["flops"], "gflop_per_step": round(run["flops"] / 1e9, 3), "achieved_gflop_s": round(achieved / 1e9, 1),
                     "matmul_peak_gflop_s": round(peaks[run["amp"]] / 1e9, 1),
                     "fraction_of_peak": round(achieved / peaks[run["amp"]], 3), "warmup_s": round(run["warmup_s"], 1)})
    return rows
