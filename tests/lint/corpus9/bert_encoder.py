"""A BERT-style encoder prepared for eager quantization the way tutorials do it:
embeddings and the extended attention mask are computed in float before the
QuantStub (the embeddings are a float island: qconfig None), attention uses
FloatFunctionals and dequantizes the scores around the softmax. Two blocks were
left as the float model wrote them."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, max_positions=64, type_vocab_size=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(max_positions).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings += self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)


class BertSelfAttention(nn.Module):
    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.all_head_size = self.num_heads * self.head_size
        self.query = nn.Linear(hidden_size, self.all_head_size)
        self.key = nn.Linear(hidden_size, self.all_head_size)
        self.value = nn.Linear(hidden_size, self.all_head_size)
        self.qk_matmul = FloatFunctional()
        self.scale = FloatFunctional()
        self.av_matmul = FloatFunctional()
        self.dequant_scores = DeQuantStub()
        self.quant_probs = QuantStub()
        self.dropout = nn.Dropout(0.1)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.num_heads, self.head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        q = self.transpose_for_scores(self.query(hidden_states))
        k = self.transpose_for_scores(self.key(hidden_states))
        v = self.transpose_for_scores(self.value(hidden_states))
        scores = self.qk_matmul.matmul(q, k.transpose(-1, -2))
        scores = self.scale.mul_scalar(scores, 1.0 / math.sqrt(self.head_size))
        scores = self.dequant_scores(scores)
        scores = scores + attention_mask
        probs = self.quant_probs(F.softmax(scores, dim=-1))
        context = self.av_matmul.matmul(self.dropout(probs), v)
        context = context.permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.all_head_size,))


class NewGELUActivation(nn.Module):
    def forward(self, input):
        return 0.5 * input * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * torch.pow(input, 3.0))))  # expect: QL301, QL104


class BertLayer(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size):
        super().__init__()
        self.attention = BertSelfAttention(hidden_size, num_heads)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.intermediate_act_fn = NewGELUActivation()
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.ffn_add = FloatFunctional()

    def forward(self, hidden_states, attention_mask):
        attn = self.attn_out(self.attention(hidden_states, attention_mask))
        attn = self.attn_norm(attn + hidden_states)  # expect: QL301
        inter = self.intermediate_act_fn(self.intermediate(attn))
        return self.output_norm(self.ffn_add.add(self.output(inter), attn))


class QuantizableBertModel(nn.Module):
    def __init__(self, vocab_size=100, hidden_size=32, num_heads=4, num_layers=2):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, hidden_size)
        self.embeddings.qconfig = None
        self.quant = QuantStub()
        self.layers = nn.ModuleList([BertLayer(hidden_size, num_heads, 4 * hidden_size) for _ in range(num_layers)])
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.pooler_act = nn.Tanh()
        self.dequant = DeQuantStub()

    def get_extended_attention_mask(self, attention_mask, dtype):
        extended = attention_mask[:, None, None, :].to(dtype)
        return (1.0 - extended) * torch.finfo(dtype).min

    def forward(self, input_ids, attention_mask, token_type_ids):
        embedding_output = self.embeddings(input_ids, token_type_ids)
        extended_mask = self.get_extended_attention_mask(attention_mask, embedding_output.dtype)
        hidden = self.quant(embedding_output)
        for layer in self.layers:
            hidden = layer(hidden, extended_mask)
        pooled = self.pooler_act(self.pooler(hidden[:, 0]))
        return self.dequant(hidden), self.dequant(pooled)
