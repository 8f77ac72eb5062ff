"""Audio and text encoders: float feature normalization before the stub, a keyword spotter
conditioned on a speaker embedding, hand-written attention whose softmax runs in float
between a DeQuantStub and a QuantStub, a CRNN whose LSTM stays float, a text classifier
whose embedding is weight-only quantized, and a transformer layer kept float by subclassing
nn.TransformerEncoderLayer."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, float_qparams_weight_only_qconfig


class SpeakerConditionedKWS(nn.Module):
    def __init__(self, n_mels: int = 40, dim: int = 32, spk_dim: int = 16, num_keywords: int = 12):
        super().__init__()
        self.quant = QuantStub()
        self.frontend = nn.Sequential(
            nn.Conv1d(n_mels, dim, 3, padding=1), nn.ReLU(), nn.Conv1d(dim, dim, 3, stride=2, padding=1), nn.ReLU()
        )
        self.spk_proj = nn.Linear(spk_dim, dim)
        self.film = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(dim, num_keywords)
        self.dequant = DeQuantStub()

    def forward(self, mels, speaker_emb):
        x = self.frontend(self.quant(torch.log(mels + 1e-6)))
        gamma = self.spk_proj(speaker_emb)  # expect: QL701
        x = self.film.mul(x, gamma.unsqueeze(-1))
        return self.dequant(self.classifier(self.pool(x).flatten(1)))


class MaskedSelfAttention(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.qk_matmul = FloatFunctional()
        self.scale_mul = FloatFunctional()
        self.dequant_scores = DeQuantStub()
        self.quant_probs = QuantStub()
        self.av_matmul = FloatFunctional()
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _merge_heads(self, probs, v):
        out = self.av_matmul.matmul(probs, v)
        return self.proj(out.transpose(1, 2).flatten(2))

    def forward(self, x, attn_bias):
        q, k, v = self._split_heads(x)
        scores = self.scale_mul.mul_scalar(self.qk_matmul.matmul(q, k.transpose(-2, -1)), self.scale)
        scores = self.dequant_scores(scores) + attn_bias
        probs = self.quant_probs(scores.softmax(dim=-1))
        return self._merge_heads(probs, v)


class EarlyBiasSelfAttention(MaskedSelfAttention):
    def forward(self, x, attn_bias):
        q, k, v = self._split_heads(x)
        scores = self.qk_matmul.matmul(q, k.transpose(-2, -1))
        scores = self.scale_mul.mul_scalar(scores, self.scale) + attn_bias  # expect: QL702, QL301
        probs = self.quant_probs(self.dequant_scores(scores).softmax(dim=-1))
        return self._merge_heads(probs, v)


class ConformerLiteEncoder(nn.Module):
    """attn_bias: (B, 1, 1, T') additive padding bias prepared by the caller, kept float."""

    def __init__(self, n_mels: int = 40, dim: int = 32, heads: int = 4):
        super().__init__()
        self.quant = QuantStub()
        self.subsample = nn.Sequential(nn.Conv1d(n_mels, dim, 3, 2, 1), nn.ReLU())
        self.attn = MaskedSelfAttention(dim, heads)
        self.add_attn = FloatFunctional()
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.add_ffn = FloatFunctional()
        self.norm2 = nn.LayerNorm(dim)
        self.dequant = DeQuantStub()

    def forward(self, mels, attn_bias):
        x = self.subsample(self.quant(mels)).transpose(1, 2)
        x = self.norm1(self.add_attn.add(x, self.attn(x, attn_bias)))
        x = self.norm2(self.add_ffn.add(x, self.ffn(x)))
        return self.dequant(x)


class ConformerLiteEncoderEarlyBias(ConformerLiteEncoder):
    def __init__(self, n_mels: int = 40, dim: int = 32, heads: int = 4):
        super().__init__(n_mels, dim, heads)
        self.attn = EarlyBiasSelfAttention(dim, heads)


class CRNNLite(nn.Module):
    """Convolutional front end in int8, recurrent part and CTC projection in float."""

    def __init__(self, n_mels: int = 40, dim: int = 32, vocab: int = 30, dequantize_before_rnn: bool = True):
        super().__init__()
        self.dequantize_before_rnn = dequantize_before_rnn
        self.quant = QuantStub()
        self.conv = nn.Sequential(nn.Conv1d(n_mels, dim, 3, 1, 1), nn.ReLU(), nn.MaxPool1d(2))
        self.dequant = DeQuantStub()
        self.rnn = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.rnn.qconfig = None
        self.out = nn.Linear(2 * dim, vocab)
        self.out.qconfig = None

    def forward(self, mels):
        x = self.conv(self.quant(mels)).transpose(1, 2)
        if self.dequantize_before_rnn:
            x, _ = self.rnn(self.dequant(x))
        else:
            x, _ = self.rnn(x)  # expect: QL702
        return self.out(x).log_softmax(dim=-1)


class FloatTransformerLayer(nn.TransformerEncoderLayer):
    """Post-norm layer kept in float: its attention has no eager int8 path."""

    qconfig = None

    def forward(self, src, src_key_padding_mask=None):
        x = self.norm1(src + self._sa_block(src, None, src_key_padding_mask))
        return self.norm2(x + self._ff_block(x))


class TinyTextClassifier(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 32, heads: int = 4, num_classes: int = 3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.embed.qconfig = float_qparams_weight_only_qconfig
        self.quant = QuantStub()
        self.proj = nn.Linear(dim, dim)
        self.dequant_enc = DeQuantStub()
        self.encoder = FloatTransformerLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.quant_enc = QuantStub()
        self.classifier = nn.Linear(dim, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, input_ids, attention_mask):
        x = self.proj(self.quant(self.embed(input_ids)))
        x = self.encoder(self.dequant_enc(x), src_key_padding_mask=attention_mask == 0)
        x = self.quant_enc(x)
        return self.dequant(self.classifier(x[:, 0]))


class Wav2VecLiteForCTC(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4, vocab: int = 30):
        super().__init__()
        self.quant = QuantStub()
        self.feature_extractor = nn.Sequential(
            nn.Conv1d(1, dim, 10, 5), nn.ReLU(), nn.Conv1d(dim, dim, 3, 2), nn.ReLU(), nn.Conv1d(dim, dim, 2, 2), nn.ReLU()
        )
        self.feature_projection = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.dequant_enc = DeQuantStub()
        self.encoder = FloatTransformerLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.lm_head = nn.Linear(dim, vocab)
        self.dequant = DeQuantStub()

    def forward(self, input_values):
        wav = (input_values - input_values.mean(-1, keepdim=True)) / torch.sqrt(input_values.var(-1, keepdim=True) + 1e-7)
        x = self.feature_extractor(self.quant(wav.unsqueeze(1))).transpose(1, 2)
        hidden = self.encoder(self.dequant_enc(self.feature_projection(x)))
        return self.dequant(self.lm_head(hidden))  # expect: QL701
