"""model/weight_ema.py: the moving average, swapping it in and out, resuming."""

import pytest
import torch

from model.weight_ema import WeightEMA, check_decay


def params(*values):
    return [torch.nn.Parameter(torch.tensor(v)) for v in values]


def test_each_update_moves_the_average_a_share_of_the_way_to_the_weights():
    weights = params([1.0, 2.0], [3.0])
    ema = WeightEMA(weights, decay=0.75)
    with torch.no_grad():
        weights[0].copy_(torch.tensor([5.0, 6.0]))
        weights[1].copy_(torch.tensor([7.0]))
    ema.update()
    assert torch.equal(ema.average[0], torch.tensor([2.0, 3.0])) and torch.equal(ema.average[1], torch.tensor([4.0]))
    ema.update()
    assert torch.allclose(ema.average[0], torch.tensor([2.75, 3.75]))


def test_the_average_is_swapped_in_and_the_trained_weights_come_back_even_after_an_error():
    weights = params([1.0])
    ema = WeightEMA(weights, decay=0.5)
    with torch.no_grad():
        weights[0].copy_(torch.tensor([3.0]))
    ema.update()  # average 2
    with ema.swapped_in():
        assert weights[0].item() == 2.0
    assert weights[0].item() == 3.0
    with pytest.raises(RuntimeError), ema.swapped_in():
        raise RuntimeError("saving failed")
    assert weights[0].item() == 3.0


def test_resuming_takes_the_loaded_weights_as_the_average_and_puts_the_trained_ones_back():
    weights = params([2.0])  # as loaded from a checkpoint: the average
    ema = WeightEMA(weights, decay=0.9)
    ema.resume([torch.tensor([3.0])])
    assert weights[0].item() == 3.0 and ema.average[0].item() == 2.0
    with pytest.raises(ValueError, match="do not match"):
        ema.resume([torch.tensor([1.0, 2.0])])


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_decays_that_would_never_move_or_overshoot_are_refused(decay):
    assert "ema_decay must be in [0, 1)" in check_decay(decay)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        WeightEMA(params([1.0]), decay)
    assert check_decay(0.0) is None and check_decay(0.999) is None
