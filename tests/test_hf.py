"""Hugging Face parity: our export loads in transformers' GPT2LMHeadModel with the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from tests.train_factory import random_export
from trainer.hf import ExportError, import_hf
from trainer.model import GPTConfig

transformers = pytest.importorskip("transformers")

CFG = GPTConfig(block_size=32, vocab_size=320, n_layer=2, n_head=4, n_embd=64)
TEXT = ["The quick brown fox jumps over the lazy dog. " * 20, "Grüße aus Köln, naïve café. " * 20]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def exported(tmp_path):
    return random_export(tmp_path, TEXT, CFG)


def test_transformers_loads_export_with_matching_logits(exported):
    model, out, _ = exported
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(out)).eval()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()  # tied
    x = torch.randint(0, CFG.vocab_size, (2, CFG.block_size))
    with torch.no_grad():
        ours, _ = model(x)
        theirs = hf(x).logits
    assert (ours - theirs).abs().max().item() < 1e-4


def test_tokenizer_files_load_in_transformers(exported):
    _, out, tok = exported
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    text = "The quick brown fox, Grüße aus Köln."
    assert hf_tok(text)["input_ids"] == tok.encode(text)
    assert hf_tok.eos_token == "<|endoftext|>"
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == tok.eot_id


def test_import_round_trip_is_exact(exported):
    model, out, _ = exported
    back = import_hf(out)
    assert back.config == CFG
    theirs = back.state_dict()
    for name, a in model.state_dict().items():
        assert torch.equal(a, theirs[name]), name
    assert back.lm_head.weight is back.transformer.wte.weight


def test_import_of_a_transformers_saved_model(tmp_path):
    torch.manual_seed(1)
    hf_cfg = transformers.GPT2Config(vocab_size=100, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    hf.save_pretrained(str(tmp_path / "hf"))
    ours = import_hf(tmp_path / "hf").eval()
    x = torch.randint(0, 100, (1, 16))
    with torch.no_grad():
        assert (ours(x)[0] - hf(x).logits).abs().max().item() < 1e-4


def test_import_rejects_other_models_and_damaged_weights(tmp_path, exported):
    _, out, _ = exported
    with pytest.raises(ExportError, match=r"config\.json"):
        import_hf(tmp_path / "nowhere")
    spec = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**spec, "activation_function": "relu"}))
    with pytest.raises(ExportError, match="tanh GELU"):
        import_hf(out)
    (out / "config.json").write_text(json.dumps(spec))
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=r"model\.safetensors"):
        import_hf(out)
