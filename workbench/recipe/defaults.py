"""Every recipe default in one place. `--set` overrides must keep the type of the default here."""

RECIPE = {
    "name": "",
    "description": "",
    "seed": 0,               # one seed drives crops, flips and every degradation: runs reproduce exactly
}

DATA = {
    "train": "sample",       # "sample" = scikit-image's bundled photos; or a folder; or Tiny ImageNet root
    "valid": "",             # "" holds out `valid_fraction` of train; or a folder of validation images
    "valid_fraction": 0.1,   # at least one image is held out whatever the fraction
    "size": 64,              # crop side in pixels: the lesson trains on 64 px Tiny ImageNet images
    "valid_size": 256,       # centre crop for validation: big enough to judge, small enough for a CPU
    "pad": 4,                # reflect-pad before the random crop, as the lesson's augmentation does
    "flip": True,            # random horizontal flip: free, label-preserving augmentation
    "trivial_augment": False,  # TrivialAugmentWide (Muller & Hutter 2021) on the clean image
    "damage_first": False,   # degrade the whole photo, then crop: for damage sized relative to the photo
                             # (watermarks, holes); off, each crop is degraded, which is cheaper
    "batch_size": 16,        # per process: under torchrun the global batch is batch_size x processes
    "crops_per_image": 0,    # crops cut from each decoded photo; 0 = one per 4 crop areas, 1 to 256
                             # (decoding a 12 MP JPEG costs as much as ~30 crops: benchmarks/RESULTS.md)
    "workers": -1,           # DataLoader worker processes; -1 = one per core less one (measured:
                             # benchmarks/RESULTS.md); 0 = the main process
    "limit": 0,              # use only the first N images (0 = all): quick experiments on big folders
    "repeat": 0,             # passes over the images per epoch; 0 = enough for EPOCH_CROPS random crops

}

# With data.repeat = 0, a tiny set (the 6 sample photos) still gives an epoch of this many random
# crops, while a big folder is seen once per epoch.
EPOCH_CROPS = 256

TRAIN = {
    "epochs": 5,
    "lr": 2e-3,              # peak of the one-cycle schedule, as in the lesson
    "weight_decay": 1e-2,    # AdamW default that the lesson keeps
    "grad_clip": 1.0,        # max gradient norm; 0 disables clipping
    "ema": 0.0,              # decay of an average of the weights that validation, best.pt and restore use
                             # (BasicSR's 0.999); 0 = off (workbench/train/ema.py; benchmarks/RESULTS.md)
    "freeze_epochs": 0,      # epochs with a pretrained encoder frozen before unfreezing it
    "steps_per_epoch": 0,    # 0 = one pass over the data; >0 caps an epoch (CI-sized runs)
    "mixed_precision": True, # bf16/fp16 autocast on CUDA; on a CPU see cpu_bf16
    "channels_last": True,   # faster convolutions on CUDA and recent CPUs
    "cpu_bf16": True,        # with mixed_precision: bf16 autocast on CPUs with native bf16 (AVX512-BF16, AMX);
                             # 1.6x faster training there, -0.03 dB at equal steps (benchmarks/RESULTS.md)
    "compile": False,        # torch.compile the training forward pass: pays off on GPUs for long runs
}

# Allowed values of the numeric keys above, checked when a recipe or a `--set` is read (before anything
# is written): conditions joined by "," ("> 0", ">= 0, < 1"). Keys not listed take any value of their type.
RANGES = {
    "recipe.seed": ">= 0, <= 9223372036854775807",   # numpy's SeedSequence takes only non-negative integers;
                                      # TOML's integers stop at 2**63 - 1
    "data.valid_fraction": ">= 0, < 1",  # a fraction; all of the images held out would leave none to train on
    "data.size": ">= 1",
    "data.valid_size": ">= 11",       # SSIM's 11 x 11 Gaussian window must fit in the validation crop
    "data.pad": ">= 0",
    "data.batch_size": ">= 1",
    "data.workers": ">= -1",          # -1 = automatic, 0 = the main process
    "data.crops_per_image": ">= 0, <= 4096",   # 0 = automatic; the cut regions of a photo are held in memory
    "data.limit": ">= 0",             # 0 = all images
    "data.repeat": ">= 0",            # 0 = automatic
    "train.epochs": ">= 1",
    "train.lr": "> 0",                # a zero learning rate trains nothing; AdamW refuses a negative one
    "train.weight_decay": ">= 0",     # AdamW refuses a negative one
    "train.grad_clip": ">= 0",        # 0 disables clipping; a negative norm would mean nothing
    "train.ema": ">= 0, < 1",         # a decay of 1 would never move from the first weights
    "train.freeze_epochs": ">= 0",
    "train.steps_per_epoch": ">= 0",  # 0 = a full pass
}

# Experiment trackers (the mlflow and wandb plugins): off unless named, since a tracker sends data
# somewhere (TensorBoard, which only writes RUN_DIR/tensorboard, is on whenever it is installed).
TRACK = {
    "mlflow": "",            # MLflow tracking URI: "file:./mlruns" (a folder, offline) or a server URL; "" = off
    "mlflow_experiment": "", # MLflow experiment; "" = the recipe's name
    "wandb": "",             # Weights & Biases project; "" = off
    "wandb_mode": "offline", # "offline" (RUN_DIR/wandb, uploaded only by `wandb sync`) or "online"
}

SECTIONS = {"recipe": RECIPE, "data": DATA, "train": TRAIN, "track": TRACK}
# Sections that name plugin components: one table or a list of tables with `type = NAME`.
COMPONENTS = {"degradations": ("degradations", list), "model": ("models", dict), "losses": ("losses", list)}
# The model a recipe without a [model] table trains: the lesson's res-block U-Net (a setting, like
# any default here; the loader fills it in, so nothing else needs the name).
MODEL = "unet"
# The model `--weights FILE` and `eval --baseline FILE` build from a bare weights file (a setting too): the
# `published` plugin's, which asks spandrel what architecture the file holds.
WEIGHTS_MODEL = "published"
