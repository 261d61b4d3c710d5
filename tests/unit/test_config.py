"""nmt.config: Hydra composes conf/ over the dataclass schemas; validate_* catch what types cannot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from nmt import NmtError
from nmt.checks import character_coverage, validate_model, validate_search, validate_train
from nmt.cli.common import to_job
from nmt.config import (
    Attention,
    Bridge,
    EvaluateJob,
    LengthPenalty,
    ModelConfig,
    SearchConfig,
    SearchMethod,
    TrainConfig,
    TrainJob,
    TranslateJob,
    conf_dir,
    describe,
    register_configs,
)


@pytest.fixture(scope="module", autouse=True)
def hydra_context() -> Iterator[None]:
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield


def full_message(e: BaseException) -> str:
    """The exception's message and those of its causes (Hydra wraps OmegaConf's error)."""
    parts = []
    while e is not None:
        parts.append(str(e))
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return "\n".join(parts)


def compose_train(*overrides: str) -> DictConfig:
    return compose(config_name="train", overrides=list(overrides))


# --------------------------------------------------------------------------- composition


def test_default_train_config_composes_to_the_dataclass() -> None:
    job = OmegaConf.to_object(compose_train())
    assert isinstance(job, TrainJob)
    assert job.data.name == "small_parallel_enja"
    assert job.model.attention == Attention.luong_general
    assert job.search.method == SearchMethod.beam
    assert job.run_dir == "runs/small_parallel_enja"


def test_toy_experiment_composes() -> None:
    job = OmegaConf.to_object(compose_train("experiment=toy"))
    assert isinstance(job, TrainJob)
    assert job.name == "toy" and job.run_dir == "runs/toy"
    assert job.data.corpus == "toy" and job.data.root == "runs/toy/corpus"
    assert (job.model.emb_dim, job.model.enc_hidden, job.model.dec_hidden) == (32, 32, 64)
    assert job.tokenizer.vocab_size == 64
    assert job.train.max_steps == 800 and job.train.label_smoothing == 0.0


def test_command_line_values_override_the_experiment() -> None:
    job = OmegaConf.to_object(
        compose_train("experiment=toy", "model.attention=bahdanau", "train.max_steps=5")
    )
    assert job.model.attention == Attention.bahdanau
    assert job.train.max_steps == 5


@pytest.mark.parametrize("name", ["translate", "evaluate", "prepare"])
def test_other_primary_configs_compose(name: str) -> None:
    cfg = compose(config_name=name, overrides=["ckpt=x.pt"] if name == "translate" else [])
    job = OmegaConf.to_object(cfg)
    assert isinstance(job, {"translate": TranslateJob, "evaluate": EvaluateJob, "prepare": TrainJob}[name])


def test_unknown_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigCompositionException) as e:
        compose_train("model.atention=bahdanau")
    assert "model.atention" in full_message(e.value)


def test_value_of_the_wrong_type_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigCompositionException) as e:
        compose_train("model.emb_dim=abc")
    msg = full_message(e.value)
    assert "model.emb_dim" in msg and "abc" in msg


def test_invalid_enum_value_is_rejected() -> None:
    with pytest.raises(ConfigCompositionException) as e:
        compose_train("model.attention=foo")
    msg = full_message(e.value)
    assert "model.attention" in msg and "foo" in msg
    assert "luong_general" in msg  # the message lists the allowed values


def test_missing_mandatory_value_becomes_an_nmt_error_naming_the_key() -> None:
    with pytest.raises(NmtError, match="ckpt is required"):
        to_job(compose(config_name="translate"))


def test_describe_prints_enum_values() -> None:
    text = describe(ModelConfig(attention=Attention.bahdanau))
    assert "attention=bahdanau" in text and "emb_dim=256" in text


def test_character_coverage_follows_the_language() -> None:
    from nmt.config import TokenizerConfig

    assert character_coverage(TokenizerConfig(), "ja") == 0.9995
    assert character_coverage(TokenizerConfig(), "en") == 1.0
    assert character_coverage(TokenizerConfig(character_coverage=0.98), "ja") == 0.98


# --------------------------------------------------------------------------- validate_*


def test_valid_model_passes() -> None:
    validate_model(ModelConfig())
    validate_model(ModelConfig(attention=Attention.luong_dot, enc_hidden=64, dec_hidden=128))


def test_luong_dot_needs_matching_sizes() -> None:
    with pytest.raises(NmtError) as e:
        validate_model(ModelConfig(attention=Attention.luong_dot, enc_hidden=64, dec_hidden=100))
    msg = str(e.value)
    assert "model.attention=luong_dot" in msg and "model.enc_hidden" in msg and "model.dec_hidden" in msg


def test_bridge_copy_needs_matching_sizes_and_layers() -> None:
    validate_model(ModelConfig(bridge=Bridge.copy, enc_hidden=64, dec_hidden=128, enc_layers=2, dec_layers=2))
    with pytest.raises(NmtError, match="model.bridge=copy"):
        validate_model(
            ModelConfig(bridge=Bridge.copy, enc_hidden=64, dec_hidden=128, enc_layers=1, dec_layers=2)
        )
    with pytest.raises(NmtError, match="model.bridge=copy"):
        validate_model(ModelConfig(bridge=Bridge.copy, enc_hidden=64, dec_hidden=64))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"emb_dim": 0}, "model.emb_dim"),
        ({"dec_layers": 0}, "model.dec_layers"),
        ({"dropout": 1.0}, "model.dropout"),
    ],
)
def test_model_values_out_of_range(change: dict, key: str) -> None:
    with pytest.raises(NmtError, match=key.replace(".", r"\.")):
        validate_model(ModelConfig(**change))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"lr": 0.0}, "train.lr"),
        ({"batch_size": 0}, "train.batch_size"),
        ({"label_smoothing": 1.0}, "train.label_smoothing"),
        ({"accum_steps": 0}, "train.accum_steps"),
        ({"betas": [0.9]}, "train.betas"),
        ({"valid_every": 0}, "train.valid_every"),
    ],
)
def test_train_values_out_of_range(change: dict, key: str) -> None:
    validate_train(TrainConfig())
    with pytest.raises(NmtError, match=key.replace(".", r"\.")):
        validate_train(TrainConfig(**change))


def test_nbest_larger_than_beam_is_an_error() -> None:
    validate_search(SearchConfig(method=SearchMethod.beam, beam_size=5, nbest=5))
    with pytest.raises(NmtError, match="search.nbest"):
        validate_search(SearchConfig(method=SearchMethod.beam, beam_size=4, nbest=5))


def test_nbest_above_one_needs_beam_search() -> None:
    with pytest.raises(NmtError, match="search.nbest"):
        validate_search(SearchConfig(method=SearchMethod.greedy, nbest=2))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"beam_size": 0}, "search.beam_size"),
        ({"temperature": 0.0}, "search.temperature"),
        ({"max_len_a": 0.0, "max_len_b": 0}, "search.max_len"),
        ({"max_len_a": -1.0}, "search.max_len_a"),
    ],
)
def test_search_values_out_of_range(change: dict, key: str) -> None:
    with pytest.raises(NmtError, match=key.replace(".", r"\.")):
        validate_search(SearchConfig(length_penalty=LengthPenalty.none, **change))
