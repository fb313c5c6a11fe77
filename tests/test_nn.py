import pytest
import torch

from vqvae_lib.blocks import Decoder, Encoder, ResidualBlock


@pytest.mark.parametrize("size", [28, 32])
def test_encoder_downsamples_by_four_and_decoder_mirrors_it(size):
    encoder, decoder = Encoder(3, 16, hidden=32, res_hidden=8), Decoder(16, 6, hidden=32, res_hidden=8)
    z = encoder(torch.randn(2, 3, size, size))
    assert z.shape == (2, 16, size // 4, size // 4)
    assert decoder(z).shape == (2, 6, size, size)


def test_encoder_is_the_papers_stack():
    convs = [m for m in Encoder(1, 8).net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convs[:2]] == [((4, 4), (2, 2))] * 2
    assert sum(isinstance(m, ResidualBlock) for m in Encoder(1, 8).net) == 2


def test_residual_block_is_identity_plus_branch():
    block = ResidualBlock(4, 2)
    torch.nn.init.zeros_(block.block[-1].weight)
    torch.nn.init.zeros_(block.block[-1].bias)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(block(x), x)


def test_wrong_channels_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"expected images x of shape \(B, 1, H, W\), got \(2, 3, 28, 28\)"):
        Encoder(1, 8)(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="multiples of 4"):
        Encoder(1, 8)(torch.zeros(2, 1, 30, 30))
    with pytest.raises(ValueError, match=r"latents z of shape \(B, 8, H, W\)"):
        Decoder(8, 2)(torch.zeros(8, 7, 7))
