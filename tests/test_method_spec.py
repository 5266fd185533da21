"""Method specs (``name{JSON options}``) and unknown options, which no method may swallow."""
from __future__ import annotations

import pytest
import torch

import xaiseg
from xaiseg.errors import ConfigError
from xaiseg.attribution.spec import MethodSpec, parse_method_spec, split_method_list

from .conftest import tiny_swin


def test_specs_parse_to_a_name_options_and_one_canonical_label():
    assert parse_method_spec("hgi-sam") == MethodSpec("hgi-sam", {})
    a = parse_method_spec(' hgi-sam{ "stages": [0, 1, 2, 3] } ')
    assert a.name == "hgi-sam" and a.options == {"stages": [0, 1, 2, 3]}
    assert a.label == 'hgi-sam{"stages":[0,1,2,3]}'
    b = parse_method_spec('rollout{"residual": 0.3, "head_fusion": "max"}')
    c = parse_method_spec('rollout{"head_fusion":"max","residual":0.3}')
    assert b.label == c.label == 'rollout{"head_fusion":"max","residual":0.3}'
    assert parse_method_spec("captum:IntegratedGradients").name == "captum:IntegratedGradients"


@pytest.mark.parametrize("text,msg", [("hgi-sam{stages: 1}", "options of 'hgi-sam': not valid JSON"), ('{"a": 1}', "no method name"),
                                      ("x{1}", "not valid JSON"), ('x{"a": 1} trailing', "not valid JSON"), ("", "empty")])
def test_malformed_specs_are_config_errors(text, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_method_spec(text)


def test_method_lists_split_outside_braces_brackets_and_strings():
    text = 'hgi-sam, hgi-sam{"stages":[0,1,2,3]},gradcam{"layer":"a,b"} ,rollout'
    assert split_method_list(text) == ["hgi-sam", 'hgi-sam{"stages":[0,1,2,3]}', 'gradcam{"layer":"a,b"}', "rollout"]
    assert split_method_list("a,,b,") == ["a", "b"]
    with pytest.raises(ConfigError, match="unbalanced"):
        split_method_list('hgi-sam{"stages":[0,1}')


def test_options_reach_the_method_and_typos_are_refused():
    m = tiny_swin()
    x = torch.randn(2, 3, 64, 64)
    spec = parse_method_spec('hgi-sam{"stages": [0, 1]}')
    via_spec = xaiseg.get_method(spec.name)(m, **spec.options).attribute(x, target=1)
    direct = xaiseg.get_method("hgi-sam")(m, stages=(0, 1)).attribute(x, target=1)
    torch.testing.assert_close(via_spec, direct, atol=0, rtol=0)
    assert not torch.equal(direct, xaiseg.get_method("hgi-sam")(m).attribute(x, target=1))
    for name, bad in (("hgi-sam", {"stage": [0]}), ("rollout", {"fusion": "max"}), ("centre-prior", {"sigma2": 1}),
                      ("gradcam", {"layers": "x"})):
        with pytest.raises(ConfigError, match=rf"unknown option\(s\) for {name}: {next(iter(bad))} \(it takes: "):
            xaiseg.get_method(name)(m, **bad)
