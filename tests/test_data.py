"""Data sources and (damaged, clean) pairs: discovery, labels, alignment, determinism."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data import (
    EpochSampler,
    PairDataset,
    make_loader,
    open_source,
    open_splits,
    split_train_valid,
)
from workbench.errors import WorkbenchError


def save(path, h=24, w=32, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


# Module-level degradations so worker processes can unpickle them.
class Identity:
    def __call__(self, img, rng):
        return img.clone()


class Noise:
    def __call__(self, img, rng):
        return (img + torch.from_numpy(rng.normal(0, 0.1, img.shape).astype(np.float32))).clamp(0, 1)


class EraseCorner:
    reports_mask = True

    def __call__(self, img, rng):
        mask = torch.zeros(1, *img.shape[1:], dtype=torch.bool)
        mask[:, :4, :4] = True
        return img.masked_fill(mask, 0.0), mask


class EraseMiddle:
    """Erases the middle half of each side: damage sized relative to the image it is given."""
    reports_mask = True

    def __call__(self, img, rng):
        _, h, w = img.shape
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[:, h // 4:h - h // 4, w // 4:w - w // 4] = True
        return img.masked_fill(mask, 0.0), mask


@pytest.fixture
def mixed(tmp_path):
    root = tmp_path / "photos"
    for k, rel in enumerate(["a.png", "b.JPG", "sub/c.bmp", "sub/deep/d.webp", "sub/deep/e.tif"]):
        save(root / rel, seed=k)
    (root / "sub" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def tiny_imagenet(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    for c, wnid in enumerate(["n02", "n01"]):  # created out of order: classes must come out sorted
        for k in range(2):
            save(root / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 64, 64, seed=10 * c + k)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("x\t0\t0\t1\t1\n")
    notes = []
    for k, wnid in enumerate(["n01", "n02", "n02", "n01"]):
        save(root / "val" / "images" / f"val_{k}.JPEG", 64, 64, seed=100 + k)
        notes.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    return root


def test_folder_is_searched_recursively_and_ignores_other_files(mixed):
    src = open_source(mixed)
    assert [src.name(i) for i in range(len(src))] == ["a.png", "b.JPG", "sub/c.bmp", "sub/deep/d.webp", "sub/deep/e.tif"]
    assert src.label(0) is None and src.classes == []
    img = src.load(2)
    assert img.shape == (3, 24, 32) and img.dtype == torch.float32
    assert len(open_source(mixed, limit=2)) == 2
    assert open_source(mixed / "sub" / "c.bmp").name(0) == "c.bmp"  # one file is a source too


def test_folder_source_holds_paths_not_pixels(mixed):
    src = open_source(mixed)
    src.load(0)
    values = list(vars(src).values()) + list(src.files)
    assert not any(isinstance(v, (torch.Tensor, np.ndarray)) for v in values)
    assert len(pickle.dumps(src)) < 2000  # what each DataLoader worker receives


def test_tiny_imagenet_layout_is_detected_with_labels(tiny_imagenet):
    train = open_source(tiny_imagenet)
    assert train.classes == ["n01", "n02"]
    assert [train.name(i) for i in range(4)] == [
        "n01/images/n01_0.JPEG", "n01/images/n01_1.JPEG", "n02/images/n02_0.JPEG", "n02/images/n02_1.JPEG"]
    assert [train.label(i) for i in range(4)] == [0, 0, 1, 1]
    valid = open_source(tiny_imagenet, split="valid")
    assert valid.classes == ["n01", "n02"]
    assert [valid.label(i) for i in range(4)] == [0, 1, 1, 0]
    assert valid.load(0).shape == (3, 64, 64)
    # The split folders opened directly keep the same class numbering.
    assert [open_source(tiny_imagenet / "train").label(i) for i in range(4)] == [0, 0, 1, 1]
    assert [open_source(tiny_imagenet / "val").label(i) for i in range(4)] == [0, 1, 1, 0]
    (tr_src, tr), (va_src, va) = open_splits(str(tiny_imagenet))
    assert (len(tr), len(va)) == (4, 4) and va_src.name(0) == "images/val_0.JPEG"


def test_labelled_folder_uses_first_level_sub_folders(tmp_path):
    for k, rel in enumerate(["dogs/a.png", "cats/b.png", "dogs/puppies/c.jpg"]):
        save(tmp_path / rel, seed=k)
    src = open_source(tmp_path)
    assert src.classes == ["cats", "dogs"]
    assert {src.name(i): src.label(i) for i in range(3)} == {"cats/b.png": 0, "dogs/a.png": 1, "dogs/puppies/c.jpg": 1}


def test_sample_source_loads_colour_photos_offline():
    src = open_source("sample")
    assert len(src) >= 4 and "astronaut" in src.names
    for i in range(len(src)):
        img = src[i]
        assert img.ndim == 3 and img.shape[0] == 3 and img.dtype == torch.float32
        assert 0 <= img.min() and img.max() <= 1
        assert (img[0] - img[1]).abs().mean() > 0.01, f"{src.name(i)} is not a colour photo"
    assert src.label(0) is None and len(open_source("sample", limit=2)) == 2


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(WorkbenchError, match="does not exist") as e:
        open_source(missing)
    assert str(missing) in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(WorkbenchError, match="no images") as e:
        open_source(empty)
    assert str(empty) in str(e.value)
    with pytest.raises(WorkbenchError, match="split"):
        open_source("sample", split="test")


def test_split_is_deterministic_disjoint_and_never_empty():
    tr, va = split_train_valid(50, 0.2, seed=3)
    assert (tr, va) == split_train_valid(50, 0.2, seed=3)
    assert split_train_valid(50, 0.2, seed=4) != (tr, va)
    assert len(va) == 10 and not set(tr) & set(va) and sorted(tr + va) == list(range(50))
    assert tuple(map(len, split_train_valid(2, 0.9, seed=0))) == (1, 1)
    assert tuple(map(len, split_train_valid(10, 0.0, seed=0))) == (9, 1)
    assert split_train_valid(1, 0.1, seed=0) == ([0], [0])
    with pytest.raises(WorkbenchError):
        split_train_valid(10, 1.5, seed=0)


def test_open_splits_holds_out_a_fraction_of_a_folder(tmp_path):
    for k in range(12):
        save(tmp_path / f"img{k:02d}.png", seed=k)
    (tr_src, tr), (va_src, va) = open_splits(str(tmp_path), valid_fraction=0.25, seed=0)
    assert tr_src is va_src and len(tr) == 9 and len(va) == 3 and not set(tr) & set(va)


def dataset(src, chain, **kw):
    opts = dict(size=16, pad=4, flip=True, trivial_augment=False, seed=0)
    return PairDataset(src, range(len(src)), chain, **{**opts, **kw})


def test_items_have_the_promised_shapes_and_line_up(mixed):
    item = dataset(open_source(mixed), [("id", Identity())])[(0, 1)]
    assert item["damaged"].shape == item["clean"].shape == (3, 16, 16)
    assert item["damaged"].dtype == item["clean"].dtype == torch.float32
    assert 0 <= item["clean"].min() and item["clean"].max() <= 1
    assert item["mask"].shape == (1, 16, 16) and item["mask"].dtype == torch.bool and not item["mask"].any()
    assert item["index"] == 1
    assert torch.equal(item["damaged"], item["clean"])


def test_mask_comes_back_and_marks_the_damage(mixed):
    item = dataset(open_source(mixed), [("id", Identity()), ("erase", EraseCorner())])[(2, 0)]
    mask = item["mask"][0]
    assert mask[:4, :4].all() and mask.sum() == 16
    assert (item["damaged"][:, mask] == 0).all()
    assert torch.equal(item["damaged"][:, ~mask], item["clean"][:, ~mask])


def test_same_key_same_item_other_epoch_other_crop(mixed):
    ds = dataset(open_source(mixed), [("noise", Noise())])
    a, b = ds[(3, 2)], ds[(3, 2)]
    assert all(torch.equal(a[k], b[k]) for k in ("damaged", "clean", "mask"))
    assert not torch.equal(a["clean"], ds[(4, 2)]["clean"])
    assert not torch.equal(dataset(open_source(mixed), [("noise", Noise())], seed=1)[(3, 2)]["clean"], a["clean"])


def test_validation_items_are_the_same_every_epoch(mixed):
    ds = dataset(open_source(mixed), [("noise", Noise())], train=False, trivial_augment=True)
    a, b = ds[(0, 1)], ds[(7, 1)]
    assert torch.equal(a["damaged"], b["damaged"]) and torch.equal(a["clean"], b["clean"])
    centre = open_source(mixed).load(1)[:, 4:20, 8:24]
    assert torch.equal(a["clean"], centre)


@pytest.mark.parametrize("hw", [(5, 7), (2, 2), (16, 3)])
@pytest.mark.parametrize("damage_first", [False, True])
def test_images_smaller_than_size_still_give_full_crops(tmp_path, hw, damage_first):
    src = open_source(save(tmp_path / "small.png", *hw))
    for train in (True, False):
        item = dataset(src, [("erase", EraseMiddle())], pad=4, train=train, damage_first=damage_first)[(1, 0)]
        assert item["clean"].shape == item["damaged"].shape == (3, 16, 16)
        assert item["mask"].shape == (1, 16, 16)


def test_damage_first_sizes_the_damage_by_the_photo_not_the_crop(mixed):
    # The 24 x 32 photos' middle half is 12 x 16: an 8 px centre crop lies wholly inside it, while
    # degrading the 8 px crop itself erases only its own middle 4 x 4.
    photo_sized = dataset(open_source(mixed), [("erase", EraseMiddle())], size=8, train=False, damage_first=True)[0]
    crop_sized = dataset(open_source(mixed), [("erase", EraseMiddle())], size=8, train=False)[0]
    assert photo_sized["mask"].all() and (photo_sized["damaged"] == 0).all()
    assert crop_sized["mask"].sum() == 16
    assert torch.equal(photo_sized["clean"], crop_sized["clean"])   # the same centre crop of the photo


def test_damage_first_crops_damaged_clean_and_mask_alike(mixed):
    ds = dataset(open_source(mixed), [("erase", EraseMiddle())], size=12, pad=0, flip=False,
                 damage_first=True)
    photo = open_source(mixed).load(3)
    windows = photo.unfold(1, 12, 1).unfold(2, 12, 1)   # every 12 x 12 window of the photo
    seen = set()
    for epoch in range(6):
        item = ds[(epoch, 3)]
        hits = (windows == item["clean"][:, None, None]).flatten(3).all(-1).all(0).nonzero().tolist()
        assert len(hits) == 1                              # clean is a window of the photo, unchanged
        top, left = hits[0]
        seen.add((top, left))
        expected = torch.zeros(24, 32, dtype=torch.bool)
        expected[6:18, 8:24] = True                        # the photo's middle half, in the crop's frame
        assert torch.equal(item["mask"][0], expected[top:top + 12, left:left + 12])
        assert (item["damaged"][:, item["mask"][0]] == 0).all()
        assert torch.equal(item["damaged"][:, ~item["mask"][0]], item["clean"][:, ~item["mask"][0]])
    assert len(seen) > 1                                   # random crops, not always the same one
    again = ds[(5, 3)]
    assert all(torch.equal(again[k], item[k]) for k in ("damaged", "clean", "mask"))


def test_damage_first_augments_the_photo_as_the_crop_would_be(mixed):
    ds = dataset(open_source(mixed), [("noise", Noise())], trivial_augment=True, damage_first=True)
    a, b = ds[(2, 1)], ds[(2, 1)]
    assert all(torch.equal(a[k], b[k]) for k in ("damaged", "clean", "mask"))
    assert 0 <= a["clean"].min() and a["clean"].max() <= 1 and not torch.equal(a["damaged"], a["clean"])


def test_repeat_gives_fresh_crops_of_the_same_images(mixed):
    src = open_source(mixed)
    ds = dataset(src, [("id", Identity())], repeat=3)
    assert len(ds) == 15 and ds[(0, 6)]["index"] == ds[(0, 1)]["index"] == 1
    assert not torch.equal(ds[(0, 6)]["clean"], ds[(0, 1)]["clean"])


def test_sampler_yields_epoch_keys_shuffled_by_seed_and_epoch():
    s = EpochSampler(6, shuffle=True, seed=0, repeat=2)
    first = list(s)
    assert len(first) == len(s) == 12 and sorted(k for _, k in first) == list(range(12))
    assert {e for e, _ in first} == {0} and first == list(s)
    s.set_epoch(1)
    assert {e for e, _ in s} == {1} and [k for _, k in s] != [k for _, k in first]
    assert [k for _, k in EpochSampler(4, shuffle=False)] == [0, 1, 2, 3]


def batches(ds, workers, epochs=2):
    sampler = EpochSampler(len(ds), shuffle=True, seed=5)
    loader = make_loader(ds, sampler, batch_size=2, workers=workers, drop_last=True)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out += list(loader)
    return out


def test_workers_do_not_change_the_batches(mixed):
    ds = dataset(open_source(mixed), [("noise", Noise()), ("erase", EraseCorner())], trivial_augment=True)
    serial, parallel = batches(ds, 0), batches(ds, 2)
    assert len(serial) == len(parallel) == 4  # 5 items, batch 2, drop_last: 2 batches per epoch
    for a, b in zip(serial, parallel):
        assert all(torch.equal(a[k], b[k]) for k in ("damaged", "clean", "mask", "index"))
    assert not torch.equal(serial[0]["clean"], serial[2]["clean"])  # epoch 1 differs from epoch 0


def test_drop_last_never_empties_a_tiny_epoch(mixed):
    ds = dataset(open_source(mixed, limit=3), [("id", Identity())])
    loader = make_loader(ds, EpochSampler(len(ds), shuffle=False), batch_size=8, workers=0, drop_last=True)
    (batch,) = list(loader)
    assert batch["clean"].shape == (3, 3, 16, 16)


def test_trivial_augment_is_deterministic_in_range_and_leaves_global_rng_alone(mixed):
    src = open_source(mixed)
    ta = dataset(src, [("id", Identity())], trivial_augment=True, flip=False)
    plain = dataset(src, [("id", Identity())], flip=False)
    state = torch.get_rng_state()
    items = [ta[(e, i)] for e in range(3) for i in range(len(src))]
    assert torch.equal(state, torch.get_rng_state())
    again = [ta[(e, i)] for e in range(3) for i in range(len(src))]
    assert all(torch.equal(a["clean"], b["clean"]) for a, b in zip(items, again))
    assert all(0 <= it["clean"].min() and it["clean"].max() <= 1 for it in items)
    assert all(torch.equal(it["damaged"], it["clean"]) for it in items)
    # Same crop, so any difference beyond 8-bit rounding is TrivialAugment at work.
    diffs = [(ta[(e, i)]["clean"] - plain[(e, i)]["clean"]).abs().max() for e in range(3) for i in range(len(src))]
    assert max(diffs) > 0.1


def test_bad_settings_are_workbench_errors(mixed):
    src = open_source(mixed)
    with pytest.raises(WorkbenchError, match="data.size"):
        dataset(src, [], size=0)
    with pytest.raises(WorkbenchError, match="no images"):
        PairDataset(src, [], [], size=8)


def test_small_sets_hold_out_a_region_of_every_image(tmp_path):
    for k in range(4):
        save(tmp_path / f"img{k}.png", h=20, w=40, seed=k)
    (tr_src, tr), (va_src, va) = open_splits(str(tmp_path), valid_fraction=0.1)
    assert tr == va == [0, 1, 2, 3]
    full, train_part, valid_part = open_source(tmp_path).load(2), tr_src.load(2), va_src.load(2)
    assert train_part.shape == (3, 20, 30) and valid_part.shape == (3, 20, 10)   # a quarter of the longer side
    assert torch.equal(torch.cat([train_part, valid_part], dim=-1), full)       # disjoint, nothing lost
    assert va_src.min_side() == 10
