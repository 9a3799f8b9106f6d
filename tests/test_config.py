"""Config round trips and the seed's defaults."""

import json

import pytest

from leed_tf import config as config_lib


def test_seed_defaults():
    c = config_lib.Config()
    assert c.model.image_size == 128 and c.model.width == 1.0
    leed = c.leed
    assert (leed.batch_size, leed.epochs, leed.decay_epochs, leed.learning_rate) == (24, 100, 50, 1e-4)
    assert (leed.beta_1, leed.beta_2) == (0.5, 0.999)
    assert (leed.lambda_q, leed.lambda_recon, leed.lambda_s, leed.lambda_gp) == (0.01, 10, 1000, 100)


def test_the_paper_leed_terms_come_back_on_the_synthetic_default():
    # The synthetic default trains LEED on the matched-pair term alone;
    # paper_leed_terms restores the seed's four weights and keeps the rest.
    c = config_lib.synthetic_defaults()
    assert (c.leed.lambda_adv, c.leed.lambda_recon, c.leed.lambda_q, c.leed.lambda_s) == (0, 0, 0, 0)
    assert c.leed.lambda_pair > 0 and c.model.code_stride == 8
    config_lib.paper_leed_terms(c)
    assert (c.leed.lambda_adv, c.leed.lambda_recon, c.leed.lambda_q, c.leed.lambda_s) == (1, 10, 0.01, 1000)
    assert c.leed.lambda_pair > 0 and c.leed.epochs == config_lib.synthetic_defaults().leed.epochs
    previous = config_lib.previous_synthetic_defaults()
    assert previous.model == config_lib.ModelConfig(width=0.125) and previous.leed.lambda_s == 1000


def test_json_round_trip(tmp_path):
    c = config_lib.synthetic_defaults()
    c.leed.lambda_s = 3.0
    c.data.synthetic_poses = (0.0,)
    path = str(tmp_path / "config.json")
    c.save(path)
    assert config_lib.Config.load(path) == c
    assert json.load(open(path))["leed"]["lambda_s"] == 3.0


def test_unknown_settings_and_datasets_are_refused():
    with pytest.raises(ValueError, match="bogus"):
        config_lib.Config.from_dict({"leed": {"bogus": 1}})
    with pytest.raises(ValueError, match="Unknown dataset"):
        config_lib.DataConfig(dataset="celeba")
    with pytest.raises(ValueError, match="neutral_source"):
        config_lib.DataConfig(neutral_source="magic")


def test_cfeed_is_cfee():
    assert config_lib.DataConfig(dataset="cfeed").dataset == "cfee"


def test_overrides_and_resolution(tmp_path):
    config = config_lib.apply_overrides(config_lib.synthetic_defaults(),
                                        {"leed.lambda_s": 0, "model.width": 0.25, "seed": None})
    assert config.leed.lambda_s == 0.0 and isinstance(config.leed.lambda_s, float)
    assert config.model.width == 0.25 and config.seed == 0
    with pytest.raises(ValueError, match="leed.bogus"):
        config_lib.apply_overrides(config, {"leed.bogus": 1})

    run_dir = str(tmp_path)
    fresh = config_lib.resolve_config(run_dir, "rafd", {"data.data_dir": "/data"})
    assert fresh.model.width == 1.0 and fresh.leed.epochs == 100  # the seed's settings
    assert config_lib.resolve_config(run_dir, None, {}).model.width == 0.125  # synthetic default
    fresh.save(str(tmp_path / "config.json"))
    resumed = config_lib.resolve_config(run_dir, None, {"leed.epochs": 120})
    assert resumed.data.dataset == "rafd" and resumed.leed.epochs == 120
    with pytest.raises(ValueError, match="cannot continue"):
        config_lib.resolve_config(run_dir, "synthetic", {})


def test_matched_pair_term_settings_are_checked():
    from leed_tf.config import LeedConfig
    assert LeedConfig().lambda_pair == 0.0  # the seed's settings have no such term
    with pytest.raises(ValueError, match="cache_codes"):
        LeedConfig(lambda_pair=1.0, cache_codes=False)
    with pytest.raises(ValueError, match=">= 0"):
        LeedConfig(lambda_pair=-1.0)
