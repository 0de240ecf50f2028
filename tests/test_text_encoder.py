"""Byte-level tokenizer and text encoder: shapes, masks, truncation, non-ASCII text, checkpoints."""

import pytest
import torch
from videocascade.models.text_encoder import (
    TEXT_ENCODER_PRESETS,
    ByteTokenizer,
    TextEncoder,
    TextEncoderConfig,
    encode_prompts,
    load_text_encoder,
)
from videocascade.runtime.checkpoints import save_checkpoint


def _encoder() -> TextEncoder:
    encoder = TextEncoder(TEXT_ENCODER_PRESETS["test-tiny"])
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return encoder.eval()


def test_tokenizer_layout_and_mask():
    ids, mask = ByteTokenizer().encode(["ab", ""], max_length=6)
    tok = ByteTokenizer
    assert ids.tolist() == [
        [tok.BOS, ord("a") + tok.OFFSET, ord("b") + tok.OFFSET, tok.EOS, tok.PAD, tok.PAD],
        [tok.BOS, tok.EOS, tok.PAD, tok.PAD, tok.PAD, tok.PAD],
    ]
    assert mask.tolist() == [[True] * 4 + [False] * 2, [True] * 2 + [False] * 4]
    assert ids.dtype == torch.long and mask.dtype == torch.bool


def test_tokenizer_non_ascii_round_trip_and_truncation_at_character_boundary():
    prompts = ["un chat qui saute à Zürich", "日本の猫が走る", "🐱 jumps", "Ελληνικά"]
    tokenizer = ByteTokenizer()
    ids, mask = tokenizer.encode(prompts, max_length=64)
    assert tokenizer.decode(ids) == prompts
    assert mask.sum(1).tolist() == [len(p.encode()) + 2 for p in prompts]
    assert int(ids.max()) < tokenizer.vocab_size
    # "日本の" is 9 bytes; 7 bytes of room keep 2 whole characters (6 bytes), never half of one.
    ids, mask = tokenizer.encode(["日本の猫"], max_length=9)
    assert tokenizer.decode(ids) == ["日本"]
    assert ids[0, int(mask.sum()) - 1] == tokenizer.EOS
    ids, _ = tokenizer.encode(["abcdefgh"], max_length=5)
    assert tokenizer.decode(ids) == ["abc"]
    with pytest.raises(ValueError, match="max_length"):
        tokenizer.encode(["x"], max_length=1)
    with pytest.raises(TypeError, match="list of prompts"):
        tokenizer.encode("a prompt", max_length=8)


def test_encoder_shapes_and_zero_padding():
    encoder = _encoder()
    embeddings, mask = encode_prompts(encoder, ["a red square", "ein blauer Kreis 🔵"])
    assert embeddings.shape == (2, 32, 32) and mask.shape == (2, 32)
    assert torch.all(embeddings[~mask] == 0)
    assert torch.all(embeddings[mask].abs().sum(-1) > 0)


def test_padding_does_not_change_real_positions():
    encoder = _encoder()
    tokenizer = ByteTokenizer()
    ids, mask = tokenizer.encode(["a cat", "a much longer prompt here"], max_length=32)
    with torch.no_grad():
        batched = encoder(ids, mask)
        alone = encoder(*tokenizer.encode(["a cat"], max_length=10))
        n = int(mask[0].sum())
        torch.testing.assert_close(batched[0, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
        # Garbage in padded slots changes nothing either.
        noisy = ids.clone()
        noisy[0, n:] = torch.randint(3, 259, (32 - n,))
        torch.testing.assert_close(encoder(noisy, mask)[0, :n], batched[0, :n], atol=1e-5, rtol=1e-5)
        # But the content of real tokens matters, and so does their order (positions are encoded).
        other = encoder(*tokenizer.encode(["a bat"], max_length=10))
        assert (other[0, :n] - alone[0, :n]).abs().max() > 1e-3
        swapped = encoder(*tokenizer.encode(["tac a"], max_length=10))
        assert (swapped[0, :n].sum(0) - alone[0, :n].sum(0)).abs().max() > 1e-3


def test_encoder_errors():
    encoder = _encoder()
    with pytest.raises(ValueError, match="exceed"):
        encoder(torch.ones(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one real token"):
        encoder(torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="even width"):
        TextEncoderConfig(dim=30, num_heads=4)


def test_trains_and_round_trips_through_a_checkpoint(tmp_path):
    encoder = _encoder().train()
    emb, mask = encode_prompts(encoder, ["a green triangle moves left"])
    emb[mask].square().mean().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    path = tmp_path / "text.safetensors"
    save_checkpoint(path, encoder, encoder.config, kind="text_encoder", family="sprites-test")
    loaded, family = load_text_encoder(path)
    assert family == "sprites-test" and loaded.config == encoder.config
    with torch.no_grad():
        torch.testing.assert_close(
            encode_prompts(loaded, ["hé"])[0], encode_prompts(encoder.eval(), ["hé"])[0]
        )
