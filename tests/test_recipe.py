"""Recipes: look-up by name or path, validation with suggestions, typed --set overrides."""
import pytest

from workbench import recipe
from workbench.api.contracts import capability
from workbench.errors import WorkbenchError


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_builtin_recipes_load_and_build(plugins):
    for name in plugins.recipes.names():
        r = recipe.load(name, plugins)
        assert r.name == name
        chain = r.degradation_chain(plugins)
        # only the classifier and the stylizer (whose style loss makes it one) train on clean images
        stylizes = any(capability(plugins.losses.get(spec["type"]), "task") == "stylize" for spec in r["losses"])
        assert chain or r["model"]["type"] == "classifier" or stylizes, name


def test_defaults_fill_in(plugins):
    r = recipe.load("colorize", plugins)
    assert r["train"]["epochs"] == 10 and r["data"]["train"] == "sample" and r["data"]["flip"] is True
    assert r["train"]["weight_decay"] == 1e-2 and r["data"]["repeat"] == 0   # from the defaults


def test_load_by_path_and_name_from_file(tmp_path, plugins):
    r = recipe.load(write(tmp_path, '[[degradations]]\ntype = "blur"\n', "myblur.toml"), plugins)
    assert r.name == "myblur" and r["degradations"] == [{"type": "blur"}]


@pytest.mark.parametrize("text, words", [
    ("[trian]\nepochs = 1\n", "unknown section [trian]. Did you mean 'train'?"),
    ("[train]\nepoch = 1\n", "unknown key 'train.epoch'. Did you mean 'epochs'?"),
    ("[train]\nepochs = \"five\"\n", "train.epochs must be an integer (like 5), got 'five'"),
    ("[data]\nflip = 1\n", "data.flip must be true or false"),
    ("[train]\nepochs = [\n", "invalid TOML"),
    ("[[degradations]]\nquality = 3\n", "has no 'type' key"),
    ("[degradations]\ntype = \"jpeg\"\n", "[[degradations]] tables"),
])
def test_bad_recipes_name_file_and_key(tmp_path, plugins, text, words):
    path = write(tmp_path, text)
    with pytest.raises(WorkbenchError) as e:
        recipe.load(path, plugins)
    assert path in str(e.value) and words in str(e.value)


def test_invalid_toml_gives_line(tmp_path, plugins):
    with pytest.raises(WorkbenchError, match=r"line 2"):
        recipe.load(write(tmp_path, "[train]\nepochs = = 3\n"), plugins)


def test_unknown_recipe_suggests(plugins):
    with pytest.raises(WorkbenchError, match="Unknown recipe 'colorise'. Did you mean 'colorize'"):
        recipe.load("colorise", plugins)
    with pytest.raises(WorkbenchError, match="not found"):
        recipe.load("missing/recipe.toml", plugins)


def test_unknown_degradation_key_found_when_building(tmp_path, plugins):
    r = recipe.load(write(tmp_path, '[[degradations]]\ntype = "jpeg"\nqualty = 3\n'), plugins)
    with pytest.raises(WorkbenchError, match=r"#1: unknown key 'qualty' for degradation 'jpeg'"):
        r.degradation_chain(plugins)


def test_overrides_typed(plugins):
    r = recipe.load("dejpeg", plugins, ["train.epochs=2", "train.lr=1e-3", "data.train=/photos",
                                        "degradations.0.quality=[20, 40]", "recipe.seed=7"])
    assert r["train"]["epochs"] == 2 and r["train"]["lr"] == 1e-3 and r["data"]["train"] == "/photos"
    assert r["degradations"][0]["quality"] == [20, 40] and r["recipe"]["seed"] == 7
    r = recipe.load("dejpeg", plugins, ["train.lr=1"])   # an int where a float is expected is fine
    assert r["train"]["lr"] == 1.0


def test_override_by_type_name_and_new_param(plugins):
    r = recipe.load("decrappify", plugins, ["degradations.jpeg.quality=15", "degradations.downsample.filter=lanczos"])
    assert r["degradations"][1]["quality"] == 15 and r["degradations"][0]["filter"] == "lanczos"


@pytest.mark.parametrize("item, words", [
    ("train.epochs=two", "train.epochs must be an integer"),
    ("train.epochs=2.5", "train.epochs must be an integer"),
    ("train.epoch=2", "Did you mean 'epochs'"),
    ("trian.epochs=2", "Did you mean 'train'"),
    ("train.epochs", "write KEY=VALUE"),
    ("degradations.5.quality=3", "has 1 degradations"),
    ("degradations.blur.sigma=3", "'blur' is not in the recipe"),
    ("degradations.0.qualty=3", "Did you mean 'quality'"),
])
def test_bad_overrides(plugins, item, words):
    with pytest.raises(WorkbenchError) as e:
        recipe.load("dejpeg", plugins, [item])
    assert f"--set {item}" in str(e.value) and words in str(e.value)


def test_override_value_checked_by_the_degradation(plugins):
    r = recipe.load("dejpeg", plugins, ["degradations.0.quality=101"])
    with pytest.raises(WorkbenchError, match="quality = 101 is out of range: allowed 1 to 100"):
        r.degradation_chain(plugins)


def test_override_adds_a_component_past_the_end(plugins):
    r = recipe.load("colorize", plugins, ["losses.1.type=perceptual", "losses.1.weight=0.2", "losses.1.net=resnet18"])
    assert r["losses"][1] == {"type": "perceptual", "weight": 0.2, "net": "resnet18"}
    with pytest.raises(WorkbenchError, match="has 1 losses"):
        recipe.load("colorize", plugins, ["losses.2.type=l1"])
