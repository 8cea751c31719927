"""forward() against `depass forward --dump` and the Hugging Face goldens; compare() against
`depass compare`; the model, config and tokenizer objects."""

import os

import numpy as np
import pytest

import depass
from conftest import DATA, FIXTURES, SHIPPED, fixture_dir, fixture_ids, read_safetensors, require, run_cli


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", FIXTURES)
def test_forward_equals_the_dump(tmp_path, name, dtype):
    d = fixture_dir(name)
    ids = fixture_ids(name)
    dump = tmp_path / "dump.safetensors"
    run_cli("forward", "-m", d, "--ids", ",".join(map(str, ids)), "--dtype", dtype, "--dump", dump, "-q")
    ref = read_safetensors(dump)
    t = depass.forward(depass.load_model(d, dtype="float64" if dtype == "f64" else "float32"), ids)
    assert set(t.names) == set(k for k in ref if k is not None)
    for n in t.names:
        assert t[n].dtype == ref[n].dtype, n
        assert np.array_equal(t[n], ref[n]), n  # the same library pass: bit for bit


@pytest.mark.parametrize("name", FIXTURES)
def test_forward_matches_the_hugging_face_golden(name):
    d = fixture_dir(name)
    # The all-float64 reference where the fixture has one (the Hugging Face float64 goldens of
    # RoPE models use float32 RoPE tables: 1e-4, tolerance.hpp), else the float64 golden.
    exact = os.path.join(d, "golden_exact_f64.safetensors")
    tol = 1e-10 if os.path.exists(exact) else 1e-4
    gold = read_safetensors(require(exact if os.path.exists(exact) else os.path.join(d, "golden_f64.safetensors")))
    t = depass.forward(depass.load_model(d, dtype="float64"), fixture_ids(name))
    for n in ["logits", "attn_probs", "hidden_states"]:
        if n in gold:
            err = np.max(np.abs(t[n] - gold[n])) / max(1.0, np.max(np.abs(gold[n])))
            assert err < tol, (n, err)


def cli_verdict(ref, cand, *extra):
    code, out, err = run_cli("compare", ref, cand, *extra, check=False)
    assert code in (0, 1), err
    lines = [l for l in out.splitlines() if l.startswith(("PASS", "FAIL"))]
    return code == 0, lines[-1] if lines else out


def test_compare_gives_the_command_lines_verdicts(tmp_path):
    d = fixture_dir("llama-gqa-s1")
    ids = fixture_ids("llama-gqa-s1")
    mine = tmp_path / "mine.safetensors"
    run_cli("forward", "-m", d, "--ids", ",".join(map(str, ids)), "--dump", mine, "-q")
    gold = require(os.path.join(d, "golden_f32.safetensors"))
    # The verdicts on files: pass, and a pass that fails at a tighter tolerance.
    for extra, kw in [([], {}), (["--rtol", "1e-12"], {"rtol": 1e-12}), (["--rtol", "1e-3", "--atol", "1e-6"],
                                                                          {"rtol": 1e-3, "atol": 1e-6})]:
        passed, line = cli_verdict(gold, mine, *extra)
        r = depass.compare(gold, mine, **kw)
        assert bool(r) == passed and r.verdict.strip() == line.strip(), (extra, r.verdict, line)
    # A candidate of one's own, in memory: one tensor perturbed from layer 1 on.
    t = depass.forward(depass.load_model(d), ids)
    cand = {n: np.array(t[n]) for n in t.names}
    cand["attn_out"][1] += 1e-2
    r = depass.compare(gold, cand)
    assert not r and r.first_failure == "attn_out"
    row = next(x for x in r.rows if x["name"] == "attn_out")
    assert row["status"] == "FAIL" and row["first_bad_slice"] == 1
    # The same candidate written to a file gives the command line's verdict.
    from conftest import write_safetensors

    f = tmp_path / "cand.safetensors"
    write_safetensors(f, {n: v for n, v in cand.items() if n != "input_ids"})
    passed, line = cli_verdict(gold, f)
    dict_result = depass.compare(gold, {n: v for n, v in cand.items() if n != "input_ids"})
    assert not passed and dict_result.verdict.strip() == line.strip()
    # dicts on both sides, shapes and NaN
    ref = {"a": np.arange(6.0).reshape(2, 3), "ids": np.array([1, 2])}
    assert depass.compare(ref, {"a": ref["a"] + 1e-9, "ids": [1, 2]})
    assert not depass.compare(ref, {"a": ref["a"].T, "ids": [1, 2]})
    bad = depass.compare(ref, {"a": np.full((2, 3), np.nan), "ids": [1, 3]})
    assert [x["status"] for x in bad.rows] == ["FAIL (NaN/Inf)", "FAIL"]
    missing = depass.compare(ref, {"a": ref["a"]})
    assert missing.first_failure == "ids" and missing.rows[-1]["status"] == "FAIL (missing)"
    with pytest.raises(ValueError):
        depass.compare({}, ref)
    with pytest.raises(ValueError):
        depass.compare(ref, ref, rtol=-1)
    with pytest.raises(FileNotFoundError):
        depass.compare(tmp_path / "none.safetensors", ref)
    with pytest.raises(ValueError):
        depass.compare(ref, ref, only=["zzz"])


def test_model_config_and_tokenizer():
    m = depass.load_model(require(SHIPPED))
    c = m.config
    assert (c["n_layers"], c["d_model"], c["n_heads"], c["vocab_size"]) == (5, 64, 8, 512)
    assert depass.read_config(SHIPPED) == c
    assert m.dtype == "float32" and not m.streamed
    ids = m.tokenize("Once upon a time")
    code, out, _ = run_cli("tokenize", "-m", SHIPPED, "--prompt", "Once upon a time")
    assert " ".join(map(str, ids)) in out
    assert m.decode(ids) == "Once upon a time"
    assert m.tokenizer.vocab_size == 512 and m.tokenizer.kind == "llama2.c"
    t = depass.load_tokenizer(os.path.join(DATA, "tokenizers", "gpt2", "tokenizer.json"))
    assert t.tokenize("Hello world", bos=False) == [15496, 995]
    assert t.decode([15496, 995]) == "Hello world"
    s = depass.load_model(SHIPPED, weights="streamed")  # a llama2.c file is always resident
    assert not s.streamed
    hf = depass.load_model(os.path.join(DATA, "weights", "stories260K_hf"), weights="streamed")
    assert hf.streamed
    a = depass.attribute(hf, ids)
    b = depass.attribute(depass.load_model(os.path.join(DATA, "weights", "stories260K_hf")), ids)
    assert np.array_equal(a.logit_attribution, b.logit_attribution)


def test_help_teaches():
    doc = depass.attribute.__doc__
    for word in ["level", "token", "head", "neuron", "subspace", "custom", "rule", "targets", "Returns"]:
        assert word in doc
    assert "compare" in depass.__doc__ or "attribute" in depass.__doc__
    assert depass.Attribution.logit_attribution.__doc__


def test_the_stubs_cover_the_module():
    import ast

    stub = os.path.join(os.path.dirname(depass.__file__), "__init__.pyi")
    tree = ast.parse(open(stub).read())
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(depass.__all__) <= top, set(depass.__all__) - top
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls in [depass.Attribution, depass.Model, depass.Tokenizer, depass.ComponentInfo]:
        stubbed = {f.name for f in classes[cls.__name__].body if isinstance(f, ast.FunctionDef)}
        public = {n for n in dir(cls) if not n.startswith("_")}
        assert public <= stubbed, (cls.__name__, public - stubbed)
