"""mot.attention_weights: the weights scaled_dot_product_attention applies, made explicit."""

import torch
import torch.nn.functional as F

from model.mot import attention_weights


def test_explicit_weights_give_the_fused_attention_output():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 8, generator=g)  # 4 query heads
    k, v = torch.randn(2, 2, 7, 8, generator=g), torch.randn(2, 2, 7, 8, generator=g)  # 2 key/value heads
    allowed = torch.rand(2, 1, 5, 7, generator=g) > 0.4
    allowed[..., 0] = True  # every query reads at least one key
    bias = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
    weights = attention_weights(q, k, bias)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)
    torch.testing.assert_close(weights @ v.repeat_interleave(2, dim=1), fused, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert (weights.masked_select(~allowed.expand_as(weights)) == 0).all()
