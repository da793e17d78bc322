"""Config coercion, validation and the presets."""

import pytest

from gankit.config import Config, diff, load_config_file, make_config
from gankit.errors import UserError
from gankit.presets import PRESETS, preset


def test_defaults_validate():
    assert make_config().batch_size == Config().batch_size


def test_strings_from_flags_are_coerced():
    cfg = make_config({"batch_size": "64", "lr_g": "1e-4", "classes": "0,3", "d_split_update": "true",
                       "steps": "10", "image_size": "none"})
    assert (cfg.batch_size, cfg.lr_g, cfg.classes, cfg.d_split_update, cfg.steps, cfg.image_size) == \
        (64, 1e-4, (0, 3), True, 10, None)


@pytest.mark.parametrize("layer, flag", [
    ({"batch_size": 0}, "--batch-size"),
    ({"lr_d": -0.1}, "--lr-d"),
    ({"loss": "hinge2"}, "--loss"),
    ({"beta1_g": 1.0}, "--beta1-g"),
    ({"steps": 5, "epochs": 2}, "--steps"),
    ({"batch_size": "many"}, "--batch-size"),
    ({"channels": 2}, "--channels"),
    ({"real_label": 0.1, "fake_label": 0.2}, "--fake-label"),
])
def test_nonsense_is_a_user_error_naming_the_flag(layer, flag):
    with pytest.raises(UserError, match=flag):
        make_config(layer)


def test_unknown_field_lists_a_hint():
    with pytest.raises(UserError, match="unknown config field 'lr_gen'.*lr_g"):
        make_config({"lr_gen": 1})


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(UserError, match="bce, minimax, lsgan, wgan-gp"):
        make_config({"loss": "nope"})


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_config(name):
    cfg = make_config(preset(name))
    assert cfg.arch in ("mlp", "dcgan-small", "infogan", "dcgan")


def test_seed_facts_in_presets():
    assert make_config(preset("mlp-gan")).bn_momentum == pytest.approx(0.2)  # Keras momentum=0.8
    scratch = make_config(preset("mlp-gan-scratch"))
    assert (scratch.real_label, scratch.fake_label, scratch.latent_dim, scratch.d_dropout) == (0.98, 0.02, 128, 0.3)
    lsgan = make_config(preset("infogan-lsgan"))
    assert (lsgan.loss, lsgan.latent_dim, lsgan.lr_g) == ("lsgan", 96, 1e-3)
    small = make_config(preset("dcgan-small"))
    assert (small.split, small.latent_dist, small.lr_decay) == ("train+test", "uniform", "keras-time")


def test_unknown_preset_lists_presets():
    with pytest.raises(UserError, match="mlp-gan"):
        preset("nope")


def test_toml_file_with_sections(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('preset = "dcgan"\n[optim]\nlr_g = 1e-4\n[data]\nclasses = [1, 2]\n')
    layer = load_config_file(f)
    assert layer == {"preset": "dcgan", "lr_g": 1e-4, "classes": [1, 2]}


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("lr_g = = 1")
    with pytest.raises(UserError, match="bad.toml"):
        load_config_file(f)


def test_diff_lists_changed_fields():
    assert diff(make_config(), make_config({"lr_g": 1e-3})) == {"lr_g": (2e-4, 1e-3)}


def test_a_later_length_replaces_the_earlier_one():
    cfg = make_config(preset("dcgan"), {"steps": 5})  # the preset gives epochs
    assert (cfg.steps, cfg.epochs) == (5, None)
    cfg = make_config({"steps": 7}, {"epochs": 2})
    assert (cfg.steps, cfg.epochs) == (None, 2)
