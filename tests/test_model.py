"""The GPT-2 model: sizes, init, tying, loss at init, overfitting, KV-cached generation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from trainer.model import CONFIGS, GPT, GPTConfig, KVCache, head_cross_entropy, named_config

TINY = GPTConfig(block_size=16, vocab_size=256, n_layer=2, n_head=2, n_embd=32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        # Hugging Face's gpt2, gpt2-medium, gpt2-large, gpt2-xl checkpoints hold these counts.
        ("gpt2", 124_439_808),
        ("gpt2-medium", 354_823_168),
        ("gpt2-large", 774_030_080),
        ("gpt2-xl", 1_557_611_200),
    ],
)
def test_paper_sizes_have_gpt2_parameter_counts(name, params):
    with torch.device("meta"):  # shapes only: no memory for 1.5B weights
        model = GPT(CONFIGS[name])
    assert model.num_params() == params
    assert CONFIGS[name].block_size == 1024


def test_config_is_validated_and_frozen():
    with pytest.raises(ValueError, match="n_embd=30 is not divisible by n_head=4"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown model 'gpt3'"):
        named_config("gpt3")
    assert named_config("gpt2", block_size=256, vocab_size=None).block_size == 256
    with pytest.raises(AttributeError):
        TINY.n_layer = 3  # type: ignore[misc]


def test_embeddings_are_tied_and_init_is_scaled():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=32, vocab_size=512, n_layer=8, n_head=4, n_embd=128)
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    proj = torch.cat([b.attn.c_proj.weight.flatten() for b in model.transformer.h])
    fc = torch.cat([b.mlp.c_fc.weight.flatten() for b in model.transformer.h])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(2 * cfg.n_layer), rel=0.05)
    assert fc.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(b.attn.c_attn.bias.abs().max() == 0 for b in model.transformer.h)


def test_untrained_loss_is_about_ln_vocab():
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=64, vocab_size=1000, n_layer=2, n_head=2, n_embd=64)
    model = GPT(cfg).eval()
    x = torch.randint(0, 1000, (8, 64))
    y = torch.randint(0, 1000, (8, 64))
    _, loss = model(x, y)
    assert loss.item() == pytest.approx(math.log(1000), abs=0.1)


def test_causality_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, 256, (1, 12))
    x2 = x.clone()
    x2[0, 8:] = (x2[0, 8:] + 1) % 256
    a, _ = model(x)
    b, _ = model(x2)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = GPT(TINY)
    opt = model.configure_optimizers(0.0, 1e-2, (0.9, 0.95), "cpu")
    x = torch.randint(0, 256, (4, 16))
    y = torch.roll(x, -1, dims=1)
    for _ in range(150):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_weight_decay_only_on_matrices():
    model = GPT(TINY)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == model.num_params()  # the tied matrix once, nothing left out


def test_ignore_index_targets_do_not_count():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, 256, (2, 8))
    y = torch.randint(0, 256, (2, 8))
    _, full = model(x[:, :4], y[:, :4])
    y_masked = y.clone()
    y_masked[:, 4:] = -1
    _, masked = model(x, y_masked)
    torch.testing.assert_close(full, masked)


@pytest.mark.parametrize("chunk_rows", [1, 5, 64])
def test_head_loss_and_gradients_equal_plain_cross_entropy(chunk_rows):
    torch.manual_seed(0)
    h = torch.randn(23, 16, requires_grad=True)
    w = torch.randn(50, 16, requires_grad=True)
    t = torch.randint(0, 50, (23,))
    t[::4] = -1
    loss = head_cross_entropy(h, w, t, chunk_rows)
    (2 * loss).backward()  # the incoming gradient scales both (gradient accumulation does this)
    ours = h.grad, w.grad
    h.grad = w.grad = None
    plain = F.cross_entropy(h @ w.t(), t, ignore_index=-1)
    (2 * plain).backward()
    torch.testing.assert_close(loss, plain)
    torch.testing.assert_close(ours, (h.grad, w.grad))


def test_model_loss_gradients_equal_the_plain_head_and_loss():
    """The tied embedding gets the head's gradient through the fused loss as it did through
    ``lm_head``: every parameter's gradient equals the plain path's."""
    torch.manual_seed(0)
    model = GPT(TINY)
    x = torch.randint(0, 256, (2, 12))
    y = torch.randint(0, 256, (2, 12))
    y[0, :3] = -1
    logits, loss = model(x, y)
    assert logits is None
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits, _ = model(x)
    plain = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1)
    plain.backward()
    torch.testing.assert_close(loss, plain)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, msg=name)
    with torch.no_grad():  # evaluation: the loss alone, no gradients computed
        torch.testing.assert_close(model(x, y)[1], plain)


def test_model_loss_under_bfloat16_autocast_follows_the_plain_path():
    torch.manual_seed(0)
    model = GPT(TINY)
    x, y = torch.randint(0, 256, (2, 12)), torch.randint(0, 256, (2, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(x, y)
        logits, _ = model(x)
    plain = F.cross_entropy(logits.float().reshape(-1, 256), y.reshape(-1))
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, plain, atol=2e-2, rtol=0)
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


def test_head_loss_computes_no_gradients_without_grad_mode():
    """Evaluation pays for the head's one matmul per chunk, not the two of its gradients."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountMatmuls(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            CountMatmuls.calls += func is torch.ops.aten.mm.default
            return func(*args, **(kwargs or {}))

    h = torch.randn(10, 8, requires_grad=True)
    w = torch.randn(30, 8, requires_grad=True)
    t = torch.randint(0, 30, (10,))
    for grad_mode, expected in ((False, 2), (True, 6)):  # 2 chunks of 5 rows
        CountMatmuls.calls = 0
        with torch.set_grad_enabled(grad_mode), CountMatmuls():
            head_cross_entropy(h, w, t, chunk_rows=5)
        assert CountMatmuls.calls == expected, grad_mode


@pytest.mark.slow
def test_compiled_model_matches_eager():
    """torch.compile traces the model whole (no graph break; its loss is then the plain one, see
    lm_loss) and gives eager's gradients (the fused loss)."""
    import torch._dynamo

    torch.manual_seed(0)
    eager, inner = GPT(TINY), GPT(TINY)
    inner.load_state_dict(eager.state_dict())
    x, y = torch.randint(0, 256, (2, 16)), torch.randint(0, 256, (2, 16))
    y[0, :4] = -1
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    _, a = eager(x, y)
    _, b = torch.compile(inner)(x, y)
    a.backward()
    b.backward()
    assert not torch._dynamo.utils.counters["graph_break"]
    torch.testing.assert_close(a, b)
    for (name, p), q in zip(eager.named_parameters(), inner.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_cache_logits_equal_full_forward():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, 256, (2, 10))
    full, _ = model(x)
    cache = KVCache(TINY, 2, TINY.block_size, "cpu", torch.float32)
    first, _ = model(x[:, :6], cache=cache)
    rest, _ = model(x[:, 6:], cache=cache)  # several new positions at once: explicit mask
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-5)
    assert cache.pos == 10


@pytest.mark.parametrize("new_tokens", [8, 30])  # 30 runs past block_size=16
def test_cached_greedy_generation_equals_uncached(new_tokens):
    torch.manual_seed(0)
    model = GPT(TINY).double().eval()  # float64: no argmax ties from rounding
    prompt = torch.randint(0, 256, (3, 5))
    cached = model.generate(prompt, new_tokens, temperature=0)
    plain = model.generate(prompt, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (3, 5 + new_tokens)
    assert torch.equal(cached, plain)


def test_sampling_is_seeded_and_top_k_limits_choices():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)

    def draw(seed, top_k=None):
        g = torch.Generator().manual_seed(seed)
        return model.generate(prompt, 12, temperature=1.0, top_k=top_k, generator=g)

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    # top_k=1 is greedy whatever the seed
    assert torch.equal(draw(3, top_k=1), model.generate(prompt, 12, temperature=0))
