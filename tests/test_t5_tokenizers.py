"""Prompt tokenizers (sentencepiece .model, tokenizer.json, embedded) and prompt encoding as the pipelines do."""

import sys

import pytest
import torch
from safetensors.torch import save_file

spm = pytest.importorskip("sentencepiece")
pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from videocascade.models.t5 import t5_encoder_from_state  # noqa: E402
from videocascade.models.tokenizers import (  # noqa: E402
    COGVIDEOX_PROMPTS,
    WAN_PROMPTS,
    JsonTokenizer,
    SentencePieceTokenizer,
    TokenizerError,
    clean_prompt,
    encode_prompts_t5,
    load_tokenizer,
)

CORPUS = [
    "A red ball bounces across a green field.",
    "Two blue squares slide past each other under a yellow sun.",
    "The camera pans slowly over a quiet city at night and rain falls.",
    "A small cat jumps onto the table and knocks over a cup of tea.",
    "Waves crash on the rocky shore while gulls circle overhead.",
]
PROMPTS = ["A red cat jumps", "Waves crash on the rocky shore while two blue gulls circle over a quiet city"]


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 20))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "spiece"),
        vocab_size=64,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,  # T5's special-token layout
        character_coverage=1.0,
        minloglevel=2,
    )
    return folder / "spiece.model"


@pytest.fixture(scope="module")
def hf_tokenizer(spm_path):
    """transformers' T5 tokenizer over the same pieces and scores (the pipelines' tokenizer)."""
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return transformers.T5Tokenizer(vocab=vocab, extra_ids=0)


def _hf_ids(tok, texts, max_length):
    out = tok(texts, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True)
    return torch.tensor(out["input_ids"]), torch.tensor(out["attention_mask"]).bool()


def test_sentencepiece_matches_transformers_and_round_trips(spm_path, hf_tokenizer):
    tok = load_tokenizer(spm_path)
    assert isinstance(tok, SentencePieceTokenizer) and tok.pad_id == 0
    for max_length in (24, 8):  # padded, and truncated (</s> kept last)
        ids, mask = tok(PROMPTS, max_length)
        ref_ids, ref_mask = _hf_ids(hf_tokenizer, PROMPTS, max_length)
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)
    ids, mask = tok(PROMPTS, 24)
    assert ids[0, mask[0].sum() - 1] == 1 and ids[0, -1] == 0
    assert tok.decode(ids[0].tolist()) == PROMPTS[0]


def test_tokenizer_json_matches_transformers(spm_path, hf_tokenizer, tmp_path):
    hf_tokenizer.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path)  # a folder holding tokenizer.json
    assert isinstance(tok, JsonTokenizer) and tok.pad_id == 0
    for max_length in (24, 8):
        ids, mask = tok(PROMPTS, max_length)
        ref_ids, ref_mask = _hf_ids(hf_tokenizer, PROMPTS, max_length)
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)
    assert tok.decode(tok(PROMPTS[:1], 24)[0][0].tolist()) == PROMPTS[0]
    assert torch.equal(tok(PROMPTS, 24)[0], SentencePieceTokenizer(spm_path)(PROMPTS, 24)[0])


def test_tokenizer_embedded_in_comfyui_file(spm_path, tmp_path):
    data = spm_path.read_bytes()
    path = tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    save_file(
        {"spiece_model": torch.frombuffer(bytearray(data), dtype=torch.uint8), "x": torch.zeros(1)}, str(path)
    )
    tok = load_tokenizer(path)
    assert torch.equal(tok(PROMPTS, 16)[0], SentencePieceTokenizer(spm_path)(PROMPTS, 16)[0])


def test_clear_errors(spm_path, tmp_path, monkeypatch):
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "nope.model")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind"):
        load_tokenizer(tmp_path / "notes.txt")
    (tmp_path / "broken.model").write_bytes(b"\x00garbage")
    with pytest.raises(TokenizerError, match="not a readable sentencepiece model"):
        load_tokenizer(tmp_path / "broken.model")
    (tmp_path / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(TokenizerError, match="not a readable tokenizer.json"):
        load_tokenizer(tmp_path / "tokenizer.json")
    save_file({"shared.weight": torch.zeros(2, 2)}, str(tmp_path / "t5.safetensors"))
    with pytest.raises(TokenizerError, match="no embedded tokenizer"):
        load_tokenizer(tmp_path / "t5.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(empty)
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # as if not installed
    with pytest.raises(TokenizerError, match="pip install sentencepiece"):
        load_tokenizer(spm_path)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(TokenizerError, match="pip install tokenizers"):
        JsonTokenizer(tmp_path / "tokenizer.json")


def _tiny_encoder(cls, config_cls):
    torch.manual_seed(0)
    cfg = config_cls(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, dropout_rate=0.0)
    cfg.feed_forward_proj = "gated-gelu"
    cfg.dense_act_fn, cfg.is_gated_act = "gelu_new", True
    return cls(cfg).eval()


def test_encode_prompts_wan_style_zeroes_padding(spm_path, hf_tokenizer):
    ref = _tiny_encoder(transformers.UMT5EncoderModel, transformers.UMT5Config)
    ours = t5_encoder_from_state(ref.state_dict())
    prompts = ["  A red   cat &amp;amp; jumps ", PROMPTS[1]]
    emb, mask = encode_prompts_t5(ours, load_tokenizer(spm_path), prompts, max_length=20, zero_padding=True)
    # diffusers' Wan pipeline: cleaned prompts, masked encoder, embeddings past each prompt's length zeroed.
    ids, ref_mask = _hf_ids(hf_tokenizer, [clean_prompt(p) for p in prompts], 20)
    with torch.no_grad():
        hidden = ref(input_ids=ids, attention_mask=ref_mask.long()).last_hidden_state
    lengths = ref_mask.sum(1)
    expected = torch.stack(
        [torch.cat([h[:n], h.new_zeros(20 - n, h.shape[1])]) for h, n in zip(hidden, lengths)]
    )
    assert clean_prompt(prompts[0]) == "A red cat & jumps"
    assert torch.equal(mask, ref_mask)
    assert emb.shape == (2, 20, 32) and emb.dtype == torch.float32
    assert (emb - expected).abs().max() < 1e-4
    assert WAN_PROMPTS == {"max_length": 512, "zero_padding": True}


def test_encode_prompts_cogvideox_style_keeps_padding(spm_path, hf_tokenizer):
    ref = _tiny_encoder(transformers.T5EncoderModel, transformers.T5Config)
    ours = t5_encoder_from_state(ref.state_dict())
    emb, mask = encode_prompts_t5(ours, load_tokenizer(spm_path), PROMPTS, max_length=26, zero_padding=False)
    # diffusers' CogVideoX pipeline: padded ids straight into the encoder, no mask, nothing zeroed.
    ids, ref_mask = _hf_ids(hf_tokenizer, PROMPTS, 26)
    with torch.no_grad():
        expected = ref(input_ids=ids).last_hidden_state
    assert torch.equal(mask, ref_mask) and not mask[0].all()
    assert (emb - expected).abs().max() < 1e-4
    assert emb[0, -1].abs().sum() > 0  # padding positions keep their embeddings
    assert COGVIDEOX_PROMPTS == {"max_length": 226, "zero_padding": False}
    with pytest.raises(ValueError, match="no prompts"):
        encode_prompts_t5(ours, load_tokenizer(spm_path), [], 26, False)
