"""Bad input through the module: the documented exception, with the command line's message
(naming the file, field or value), and never a crash of the interpreter."""

import json
import os
import shutil

import numpy as np
import pytest

import depass
from conftest import DATA, SHIPPED, fixture_dir, fixture_ids, require, run_cli, write_random_llama

HF = os.path.join(DATA, "weights", "stories260K_hf")


def hf_dir(tmp_path, name, edit):
    """stories260K_hf with its config.json edited and its weights linked."""
    d = tmp_path / name
    d.mkdir()
    with open(require(os.path.join(HF, "config.json"))) as f:
        c = json.load(f)
    edit(c)
    (d / "config.json").write_text(json.dumps(c))
    os.symlink(os.path.join(HF, "model.safetensors"), d / "model.safetensors")
    return str(d)


def cli_error(*args, quiet=True):
    """The command line's one error line for the same input (without its 'depass: error: ' prefix)."""
    code, _, err = run_cli(*args, *(["-q"] if quiet else []), check=False)
    assert code == 1, err
    assert err.startswith("depass: error: ") and err.count("\n") == 1, err
    return err[len("depass: error: ") :].strip()


def same_message(excinfo, cli_message):
    assert str(excinfo.value) == cli_message, (str(excinfo.value), cli_message)


@pytest.fixture(scope="module")
def model():
    return depass.load_model(require(SHIPPED))


def test_missing_and_malformed_model_files(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        depass.load_model(tmp_path / "nothing.bin")
    assert "nothing.bin" in str(e.value)
    # safetensors cut short: the header's data offsets point past the end.
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(os.path.join(HF, "config.json"), short / "config.json")
    raw = open(os.path.join(HF, "model.safetensors"), "rb").read()
    (short / "model.safetensors").write_bytes(raw[:-4096])
    with pytest.raises(OSError) as e:
        depass.load_model(short)
    assert "'data_offsets'" in str(e.value) and "beyond the data section" in str(e.value)
    same_message(e, cli_error("attribute", "--ids", "1,2,3", "--out", tmp_path / "o.safetensors", "-m", short))
    # GGUF: 4 bytes, and cut short.
    four = tmp_path / "g.gguf"
    four.write_bytes(b"GGUF")
    with pytest.raises(OSError) as e:
        depass.load_model(four)
    assert "truncated GGUF file" in str(e.value) and "'version'" in str(e.value)
    gg = open(require(os.path.join(DATA, "weights", "third_party", "llama-2-tiny-random.gguf")), "rb").read()
    (tmp_path / "short.gguf").write_bytes(gg[:-4096])
    with pytest.raises(OSError) as e:
        depass.load_model(tmp_path / "short.gguf")
    assert "'output.weight'" in str(e.value)
    # llama2.c header claiming twice the layers.
    b = bytearray(open(SHIPPED, "rb").read())
    b[8:12] = (10).to_bytes(4, "little")
    (tmp_path / "big.bin").write_bytes(bytes(b))
    with pytest.raises(OSError) as e:
        depass.load_model(tmp_path / "big.bin")
    assert "n_layers=10" in str(e.value) and "implies" in str(e.value)
    assert not (tmp_path / "o.safetensors").exists()


def test_unsupported_configs(tmp_path):
    yarn = hf_dir(tmp_path, "yarn", lambda c: c.update(
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}))
    with pytest.raises(OSError) as e:
        depass.load_model(yarn)
    assert "rope_scaling.rope_type" in str(e.value) and "'yarn'" in str(e.value)
    same_message(e, cli_error("attribute", "--ids", "1,2,3", "--out", tmp_path / "o.safetensors", "-m", yarn))
    awq = hf_dir(tmp_path, "awq", lambda c: c.update(quantization_config={"quant_method": "awq", "bits": 4}))
    with pytest.raises(OSError) as e:
        depass.read_config(awq)
    assert "quantization_config" in str(e.value) and "awq" in str(e.value)


def test_bad_tokenizer_files(tmp_path):
    good = open(require(os.path.join(DATA, "tokenizers", "gpt2", "tokenizer.json"))).read()
    (tmp_path / "trunc.json").write_text(good[: len(good) // 3])
    with pytest.raises(OSError) as e:
        depass.load_tokenizer(tmp_path / "trunc.json")
    assert "trunc.json" in str(e.value) and "not valid JSON" in str(e.value) and "truncated" in str(e.value)
    with pytest.raises(FileNotFoundError):
        depass.load_tokenizer(tmp_path / "none.model")
    # A tokenizer larger than the model's vocabulary is refused when it is used.
    m = depass.load_model(SHIPPED, tokenizer=os.path.join(DATA, "tokenizers", "gpt2", "tokenizer.json"))
    with pytest.raises(OSError) as e:
        m.tokenize("hello")
    assert "pieces but the model's vocabulary has only 512" in str(e.value)


def test_bad_ids_and_prompts(model, tmp_path):
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [1, 99999])
    assert "id 99999 at position 1 is outside the vocabulary [0, 512)" in str(e.value)
    same_message(e, cli_error("attribute", "-m", SHIPPED, "--ids", "1,99999", "--out", tmp_path / "o.safetensors"))
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [1] * 5000)
    assert "5000 tokens exceed the model's maximum of" in str(e.value)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [])
    with pytest.raises(ValueError) as e:
        depass.attribute(model, "")
    assert "empty" in str(e.value)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [1.5, 2.0])
    assert "integers" in str(e.value)
    with pytest.raises(ValueError):
        depass.attribute(model, [[1, 2], [3, 4]])
    with pytest.raises(ValueError) as e:
        depass.forward(model, [1, -3])
    assert "-3" in str(e.value)
    with pytest.raises(ValueError):
        depass.attribute(model, [1, 2], targets=[512])
    with pytest.raises(ValueError):
        depass.attribute(model, [1, 2, 3], targets=[[1], [2]])
    with pytest.raises(ValueError):
        model.decode([1, 2**40])
    with pytest.raises(ValueError):
        model.tokenizer.piece(512)


def test_bad_levels_and_indices(model, tmp_path):
    ids = [1, 2, 3]
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="head", layer=7)
    assert "layer 7 is out of range" in str(e.value)
    same_message(e, cli_error("attribute", "-m", SHIPPED, "--ids", "1,2,3", "--level", "head", "--layer", "7",
                              "--out", tmp_path / "o.safetensors"))
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="neuron", neurons=[5000])
    assert "neuron 5000 is out of range" in str(e.value)
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="head", heads=[99])
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="token", layer=-1)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="tokens")
    assert "tokens" in str(e.value)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, rule="soft")
    assert "soft" in str(e.value)
    with pytest.raises(ValueError):
        depass.attribute(model, ids, temperature=0)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, heads=[0])
    assert "heads applies to level=\"head\" only" in str(e.value)
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="neuron", neurons=[1], neuron_groups=2)
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="neuron", neuron_groups=0)
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="subspace")
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="subspace", basis=np.ones((3, 3, 3)))
    assert "expected [D, k] or [D, D]" in str(e.value)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="subspace", basis=np.array([[np.nan] * 2] * 64))
    assert "non-finite" in str(e.value)
    with pytest.raises(FileNotFoundError):
        depass.attribute(model, ids, level="subspace", basis=str(tmp_path / "nope.npy"))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f8'")
    with pytest.raises(OSError) as e:
        depass.attribute(model, ids, level="custom", components=str(tmp_path / "bad.npy"))
    assert "bad.npy" in str(e.value)
    with pytest.raises(ValueError) as e:
        depass.attribute(model, ids, level="custom", components=np.ones((2, 3, 64)))
    with pytest.raises(ValueError):
        depass.attribute(model, ids, level="custom", components=np.array(["a", "b"]))
    with pytest.raises(ValueError):
        depass.load_model(SHIPPED, dtype="float16")
    with pytest.raises(ValueError):
        depass.load_model(SHIPPED, weights="mapped")


def test_bad_outputs(model, tmp_path):
    r = depass.attribute(model, [1, 2, 3])
    with pytest.raises(ValueError):
        r.save(tmp_path / "x.safetensors", format="xml")
    with pytest.raises(ValueError):
        r.save(tmp_path / "x.safetensors", json_components=True)
    with pytest.raises(OSError) as e:
        r.save(tmp_path / "no_such_dir" / "x.safetensors")
    assert "x.safetensors" in str(e.value)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "keep.txt").write_text("mine")
    with pytest.raises(OSError):
        r.save(tmp_path / "occupied", format="npy")
    assert (tmp_path / "occupied" / "keep.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["occupied"]  # nothing partial left behind


def test_memory_refusal(model, monkeypatch):
    monkeypatch.setenv("DEPASS_FREE_MEMORY", "64K")
    with pytest.raises(MemoryError) as e:
        depass.attribute(model, list(range(1, 200)), level="neuron")
    assert "not enough memory" in str(e.value) and "DEPASS_FREE_MEMORY" in str(e.value)
    with pytest.raises(MemoryError):
        depass.load_model(SHIPPED, dtype="float64")
    monkeypatch.setenv("DEPASS_FREE_MEMORY", "lots")
    with pytest.raises(ValueError) as e:
        depass.attribute(model, [1, 2])
    assert "DEPASS_FREE_MEMORY='lots'" in str(e.value)


def test_completeness_violation_is_a_runtime_error(tmp_path):
    # Norm gains so large that float32 overflows in the first block (attention scores, MLP
    # products): NaN in the recorded pass, so the components cannot add up to the state.
    d = write_random_llama(tmp_path / "huge", norm_gain=1e30)
    m = depass.load_model(d)
    with pytest.raises(RuntimeError) as e:
        depass.attribute(m, [1, 2, 3, 4])
    assert isinstance(e.value, depass.CompletenessError)
    assert "completeness violated" in str(e.value)


def test_the_interpreter_survives_everything(model):
    # After all of the above the module still works.
    r = depass.attribute(model, "Once upon a time")
    assert r.completeness_max_rel < 1e-4


def test_bad_tokenizer_json_edits_match_the_command_line(tmp_path):
    # The command line's list of broken tokenizer.json files, made from GPT-2's: each gives the
    # same one-line message through the module (as OSError) and through `depass tokenize`.
    base = json.load(open(require(os.path.join(DATA, "tokenizers", "gpt2", "tokenizer.json"))))

    def edited(name, edit):
        j = json.loads(json.dumps(base))
        edit(j)
        p = tmp_path / name
        p.write_text(json.dumps(j))
        return p

    cases = [
        (edited("types.json", lambda j: j["model"].update(vocab=[1, 2])), ["'model.vocab'", "must be an object"]),
        (edited("merges.json", lambda j: j["model"]["merges"].append("a zzqqzzqqzz")), ["model.merges", "'zzqqzzqqzz'"]),
        (edited("big_id.json", lambda j: j["model"]["vocab"].update({"ab": 99999})), ["99999"]),
        (edited("added.json", lambda j: j.update(added_tokens=[{"id": 70000, "content": "<x>", "special": True}])),
         ["added_tokens[0]", "70000"]),
    ]
    for path, must in cases:
        with pytest.raises(OSError) as e:
            depass.load_tokenizer(path)
        for m in must:
            assert m in str(e.value), (path.name, str(e.value))
        same_message(e, cli_error("tokenize", "--tokenizer", path, "--prompt", "abc", quiet=False))
