"""The module against the command line (the same run, the same files), against the exact float64
references of the fixtures, and its arrays."""

import os

import numpy as np
import pytest

import depass
from conftest import (DATA, FIXTURES, SHIPPED, fixture_dir, fixture_ids, read_safetensors, require, run_cli)

# The agreement the module must reach with the command line's output file for the same run:
# both call the same library, so anything above the rounding of one conversion is a bug.
TOL = {"f32": 1e-6, "f64": 1e-12}


def models():
    out = [(name, fixture_dir(name), fixture_ids(name)) for name in FIXTURES]
    out.append(("stories260K", SHIPPED, None))  # the shipped model, with a prompt
    return out


# Each level variant as (name, CLI flags, keyword arguments of depass.attribute); the
# subspace and custom inputs are made per model (they need D and the state).
VARIANTS = [
    ("token", [], {}),
    ("token-h1-taylor", ["--layer", "1", "--rule", "taylor"], {"layer": 1, "rule": "taylor"}),
    ("module-attn", ["--level", "module", "--module", "attn"], {"level": "module", "module": "attn"}),
    ("module-mlp", ["--level", "module", "--module", "mlp", "--layer", "1"],
     {"level": "module", "module": "mlp", "layer": 1}),
    ("head", ["--level", "head", "--rule", "linear"], {"level": "head", "rule": "linear"}),
    ("head-some", ["--level", "head", "--heads", "0,1", "--layer", "1"], {"level": "head", "heads": [0, 1], "layer": 1}),
    ("neuron", ["--level", "neuron", "--rule", "max"], {"level": "neuron", "rule": "max"}),
    ("neuron-groups", ["--level", "neuron", "--neuron-groups", "4"], {"level": "neuron", "neuron_groups": 4}),
    ("subspace", None, None),
    ("custom", None, None),
]


def abs_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(path, dtype):
        key = (path, dtype)
        if key not in cache:
            cache[key] = depass.load_model(require(path), dtype="float64" if dtype == "f64" else "float32")
        return cache[key]

    return get


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("model_name,path,ids", models(), ids=[m[0] for m in models()])
def test_every_level_matches_the_command_line(loaded, tmp_path, model_name, path, ids, dtype):
    model = loaded(path, dtype)
    D = model.config["d_model"]
    if ids is None:
        tokens = ["--prompt", "Once upon a time"]
        source = "Once upon a time"
        ids_used = model.tokenize(source)
    else:
        tokens = ["--ids", ",".join(map(str, ids))]
        source = ids
        ids_used = ids
    N = len(ids_used)
    rng = np.random.default_rng(7)
    checked = 0
    for name, flags, kwargs in VARIANTS:
        if name == "subspace":
            basis = rng.normal(size=(D, 3))
            np.save(tmp_path / "basis.npy", basis)
            flags = ["--level", "subspace", "--layer", "1", "--basis", str(tmp_path / "basis.npy")]
            kwargs = {"level": "subspace", "layer": 1, "basis": str(tmp_path / "basis.npy")}
        if name == "custom":
            h1 = depass.forward(depass.load_model(path, dtype="float64"), source).hidden_states[1]
            parts = np.stack([0.25 * h1, 0.75 * h1])
            np.save(tmp_path / "custom.npy", parts)
            flags = ["--level", "custom", "--layer", "1", "--components", str(tmp_path / "custom.npy")]
            kwargs = {"level": "custom", "layer": 1, "components": parts}
        out = tmp_path / f"{name}.safetensors"
        html = tmp_path / f"{name}.html"
        run_cli("attribute", "-m", path, *tokens, "--dtype", dtype, *flags, "--out", out, "--html", html, "-q")
        ref = read_safetensors(out)
        r = depass.attribute(model, source, **kwargs)
        scale = max(1.0, float(np.max(np.abs(ref["logit_attribution"]))))
        err = abs_err(r.logit_attribution, ref["logit_attribution"])
        assert err <= TOL[dtype] * scale, f"{model_name} {name} {dtype}: logit_attribution differs by {err}"
        assert abs_err(r.components, ref["components"]) <= TOL[dtype] * max(1.0, float(np.max(np.abs(ref["components"]))))
        assert np.array_equal(r.targets, ref["targets"])
        assert abs_err(r.target_logits, ref["target_logits"]) <= TOL[dtype] * scale
        assert list(ref["input_ids"]) == list(ids_used)
        assert r.component_names == __import__("json").loads(ref[None]["component_names"])
        assert r.level == ref[None]["level"] and r.cut == ref[None]["cut"] and r.rule == ref[None]["rule"]
        # Completeness, at the final residual, from the arrays handed out.
        final = depass.forward(model, source).final_residual_prenorm
        sum_err = abs_err(r.components.sum(axis=0), final)
        assert sum_err <= (1e-9 if dtype == "f64" else 2e-4) * max(1.0, float(np.max(np.abs(final))))
        assert r.completeness_max_rel <= (1e-10 if dtype == "f64" else 1e-4)
        # The files the module writes are the command line's, byte for byte.
        r.save(tmp_path / f"{name}.py.safetensors")
        assert (tmp_path / f"{name}.py.safetensors").read_bytes() == out.read_bytes()
        r.to_html(tmp_path / f"{name}.py.html")
        assert (tmp_path / f"{name}.py.html").read_bytes() == html.read_bytes()
        checked += 1
    assert checked == len(VARIANTS)


def test_json_and_npy_outputs_match_the_command_line(tmp_path):
    path = require(SHIPPED)
    model = depass.load_model(path)
    r = depass.attribute(model, "Once upon a time", level="head", layer=2)
    run_cli("attribute", "-m", path, "--prompt", "Once upon a time", "--level", "head", "--layer", "2",
            "--format", "json", "--json-components", "--out", tmp_path / "cli.json", "-q")
    r.save(tmp_path / "py.json", format="json", json_components=True)
    assert (tmp_path / "py.json").read_bytes() == (tmp_path / "cli.json").read_bytes()
    run_cli("attribute", "-m", path, "--prompt", "Once upon a time", "--level", "head", "--layer", "2",
            "--format", "npy", "--out", tmp_path / "cli_npy", "-q")
    r.save(tmp_path / "py_npy", format="npy")
    names = sorted(os.listdir(tmp_path / "cli_npy"))
    assert names == sorted(os.listdir(tmp_path / "py_npy")) and "logit_attribution.npy" in names
    for n in names:
        assert (tmp_path / "py_npy" / n).read_bytes() == (tmp_path / "cli_npy" / n).read_bytes(), n


def test_all_layers_matches_the_command_line(tmp_path):
    path = require(fixture_dir("qwen2-s1"))
    ids = fixture_ids("qwen2-s1")
    out = tmp_path / "cli.safetensors"
    run_cli("attribute", "-m", path, "--ids", ",".join(map(str, ids)), "--dtype", "f64", "--all-layers",
            "--out", out, "-q")
    ref = read_safetensors(out)
    r = depass.attribute(depass.load_model(path, dtype="float64"), ids, all_layers=True)
    assert r.components_by_point.shape == ref["components_by_point"].shape
    assert abs_err(r.components_by_point, ref["components_by_point"]) <= 1e-12 * max(
        1.0, float(np.max(np.abs(ref["components_by_point"]))))
    assert r.points == __import__("json").loads(ref[None]["points"])
    assert depass.attribute(depass.load_model(path), ids).components_by_point is None


# The exact float64 references of the fixtures (independent code): components [M, N, D] at the
# final residual, the rest last.
SPEC = [
    ("depass_spec_token_f64.npy", {}),
    ("depass_spec_token_nospecial_f64.npy", {"ignore_special_token": False}),
    ("depass_spec_token_mlptaylor_f64.npy", {"rule": "taylor"}),
    ("depass_spec_head_L0_f64.npy", {"level": "head"}),
    ("depass_spec_neuron_L0_f64.npy", {"level": "neuron"}),
    ("depass_spec_module_mlp_L0_f64.npy", {"level": "module", "module": "mlp"}),
]


@pytest.mark.parametrize("name", FIXTURES)
def test_components_equal_the_float64_references(name):
    d = fixture_dir(name)
    model = depass.load_model(d, dtype=np.float64)
    ids = fixture_ids(name)
    for file, kwargs in SPEC:
        ref = np.load(require(os.path.join(d, file)))
        r = depass.attribute(model, ids, **kwargs)
        err = abs_err(r.components, ref)
        assert err <= 1e-10 * max(1.0, float(np.max(np.abs(ref)))), f"{name} {file}: {err}"


def test_arrays_are_views_and_read_only():
    model = depass.load_model(require(SHIPPED))
    r = depass.attribute(model, "Once upon a time")
    a, b = r.logit_attribution, r.logit_attribution
    assert a.base is not None and np.shares_memory(a, b)  # the library's buffer, not a copy
    assert not a.flags.writeable and not r.target_logits.flags.writeable
    assert a.dtype == np.float32 and r.target_logits.dtype == np.float64
    assert r.components is r.components  # made dense once
    del r
    assert np.isfinite(a).all()  # the view keeps its result alive
    # Summed over components the shares are the target logits (completeness at the logits).
    r = depass.attribute(depass.load_model(SHIPPED, dtype="float64"), "Once upon a time")
    assert abs_err(r.logit_attribution.sum(axis=0), r.target_logits) <= 1e-10 * float(np.max(np.abs(r.target_logits)))


def test_input_arrays_of_any_layout_and_float_type(tmp_path):
    path = require(fixture_dir("llama-gqa-s1"))
    model = depass.load_model(path, dtype="float64")
    ids = np.array(fixture_ids("llama-gqa-s1"), dtype=np.int32)
    D = model.config["d_model"]
    basis = np.random.default_rng(3).normal(size=(D, 4)).astype(np.float16)
    ref = depass.attribute(model, list(ids), level="subspace", layer=1, basis=basis.astype(np.float64))
    fortran = np.asfortranarray(basis)
    assert not fortran.flags.c_contiguous
    r = depass.attribute(model, ids, level="subspace", layer=1, basis=[fortran])
    assert abs_err(r.logit_attribution, ref.logit_attribution) == 0.0
    h1 = depass.forward(model, ids).hidden_states[1]
    parts = np.asfortranarray(np.stack([0.5 * h1, 0.5 * h1]))
    c = depass.attribute(model, ids, level="custom", layer=1, components=parts)
    assert c.M == 3


def test_targets_and_descriptors():
    path = require(fixture_dir("gpt2-s1"))
    ids = fixture_ids("gpt2-s1")
    model = depass.load_model(path, dtype="float64")
    r = depass.attribute(model, ids, targets=[5, 9])
    assert r.K == 2 and (r.targets == np.array([[5, 9]] * len(ids))).all()
    per = np.arange(len(ids) * 1).reshape(len(ids), 1) + 3
    r2 = depass.attribute(model, ids, targets=per)
    assert (r2.targets[:, 0] == per[:, 0]).all()
    h = depass.attribute(model, ids, level="head", layer=1, heads=[1])
    info = h.component_info
    assert [i.kind for i in info] == ["head", "rest"]
    assert (info[0].layer, info[0].index) == (1, 1)
    g = depass.attribute(model, ids, level="neuron", neuron_groups=2)
    assert g.component_info[1].kind == "neuron group" or g.component_info[1].index_end > g.component_info[1].index


def test_a_gguf_file_and_its_embedded_vocabulary_match_the_command_line(tmp_path):
    path = require(os.path.join(DATA, "weights", "third_party", "llama-2-tiny-random.gguf"))
    for dtype in ["f32", "f64"]:
        model = depass.load_model(path, dtype="float64" if dtype == "f64" else "float32")
        assert model.tokenizer.kind.startswith("gguf")
        for flags, kwargs in [([], {}), (["--level", "head"], {"level": "head"}),
                              (["--level", "neuron", "--rule", "taylor"], {"level": "neuron", "rule": "taylor"})]:
            out = tmp_path / f"g_{dtype}_{len(flags)}.safetensors"
            run_cli("attribute", "-m", path, "--prompt", "Hello world, once more", "--dtype", dtype, *flags,
                    "--out", out, "-q")
            ref = read_safetensors(out)
            r = depass.attribute(model, "Hello world, once more", **kwargs)
            assert list(r.input_ids) == list(ref["input_ids"])
            scale = max(1.0, float(np.max(np.abs(ref["logit_attribution"]))))
            assert abs_err(r.logit_attribution, ref["logit_attribution"]) <= TOL[dtype] * scale
            r.save(tmp_path / "py.safetensors")
            assert (tmp_path / "py.safetensors").read_bytes() == out.read_bytes()


def test_the_qk_split_matches_the_command_line(tmp_path):
    path = require(SHIPPED)
    out = tmp_path / "qk.safetensors"
    run_cli("attribute", "-m", path, "--prompt", "Once upon a time", "--level", "head", "--layer", "0", "--qk", "3",
            "--qk-heads", "1,2", "--query-positions", "4,2", "--dtype", "f64", "--out", out, "-q")
    ref = read_safetensors(out)
    model = depass.load_model(path, dtype="float64")
    r = depass.attribute(model, "Once upon a time", level="head", layer=0, qk=3, qk_heads=[1, 2],
                         query_positions=np.array([4, 2]))
    assert r.qk_heads == [1, 2] and r.qk_queries == [4, 2]
    assert np.array_equal(r.qk_logits, ref["qk_logits"]) and not r.qk_logits.flags.writeable
    assert r.qk_check[0] < 1e-12 and r.qk_check[1] < 1e-12
    # Summed over both component axes: the model's logits (causal entries), whose softmax is the
    # recorded attention of block 3.
    probs = depass.forward(model, "Once upon a time").attn_probs[3]
    for h, head in enumerate([1, 2]):
        for i, q in enumerate([4, 2]):
            s = r.qk_logits[h, :, :, i, : q + 1].sum(axis=(0, 1))
            p = np.exp(s - s.max())
            assert np.max(np.abs(p / p.sum() - probs[head, q, : q + 1])) < 1e-12
    r.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == out.read_bytes()
    assert depass.attribute(model, [1, 2, 3]).qk_logits is None
    with pytest.raises(ValueError):
        depass.attribute(model, [1, 2, 3], qk_heads=[0])
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [1, 2, 3], layer=3, qk=1)
    assert "after h[1]" in str(e.value)
