"""BERT- and GPT-style text models: token types, padding masks, GELU MLPs, a pooler, tied LM heads."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, max_positions: int = 32, type_vocab_size: int = 2, pad_token_id: int = 0):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(max_positions).expand((1, -1)), persistent=False)

    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None) -> Tensor:
        position_ids = self.position_ids[:, : input_ids.size(1)]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # expect: QL301
        embeddings = embeddings + self.position_embeddings(position_ids)  # expect: QL301
        return self.LayerNorm(embeddings)


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_size = hidden // num_heads
        self.all_head_size = self.num_heads * self.head_size
        self.query = nn.Linear(hidden, self.all_head_size)
        self.key = nn.Linear(hidden, self.all_head_size)
        self.value = nn.Linear(hidden, self.all_head_size)

    def transpose_for_scores(self, x: Tensor) -> Tensor:
        return x.view(x.size()[:-1] + (self.num_heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden_states: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        q, k, v = (self.transpose_for_scores(proj(hidden_states)) for proj in (self.query, self.key, self.value))
        scores = torch.matmul(q, k.transpose(-1, -2))  # expect: QL302
        scores = scores / math.sqrt(self.head_size)  # expect: QL303
        if attention_mask is not None:
            scores = scores + attention_mask  # expect: QL301
        probs = F.softmax(scores, dim=-1)  # expect: QL102
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()  # expect: QL302
        return context.view(context.size()[:-2] + (self.all_head_size,))


class BertLayer(nn.Module):
    def __init__(self, hidden: int, num_heads: int, intermediate: int):
        super().__init__()
        self.attention = BertSelfAttention(hidden, num_heads)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        x = self.attn_norm(self.dropout(self.attn_out(self.attention(x, attention_mask))) + x)  # expect: QL301
        return self.out_norm(self.dropout(self.output(F.gelu(self.intermediate(x)))) + x)  # expect: QL301


class BertForPreTraining(nn.Module):
    def __init__(self, vocab_size: int = 50, hidden: int = 16, layers: int = 2, heads: int = 2):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, hidden)
        self.layer = nn.ModuleList(BertLayer(hidden, heads, 4 * hidden) for _ in range(layers))
        self.pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-12))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None, token_type_ids: Optional[Tensor] = None, labels: Optional[Tensor] = None):
        extended = None if attention_mask is None else (1.0 - attention_mask[:, None, None, :].float()) * -10000.0  # expect: QL301, QL104
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layer:
            x = layer(x, extended)
        logits = F.linear(self.transform(x), self.embeddings.word_embeddings.weight, self.mlm_bias)  # expect: QL103, QL504
        if labels is None:
            return logits, self.pooler(x[:, 0])
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)  # expect: QL104


class NewGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))  # expect: QL104, QL301


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, flash: bool = False):
        super().__init__()
        self.n_head = n_head
        self.flash = flash
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # expect: QL104
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # expect: QL301
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            # The table names F.softmax only; the Tensor.softmax method form is left open.
            y = att.softmax(dim=-1) @ v  # expect: QL301; allow: QL102
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class GPTBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), NewGELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))  # expect: QL301
        return x + self.mlp(self.ln_2(x))  # expect: QL301


class TinyGPT(nn.Module):
    def __init__(self, vocab_size: int = 50, block_size: int = 16, n_embd: int = 16, n_head: int = 2, n_layer: int = 2, pad_token_id: int = 0):
        super().__init__()
        self.pad_token_id = pad_token_id
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([GPTBlock(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        self.score = nn.Linear(n_embd, 2)

    def forward(self, idx: Tensor, classify: bool = False) -> Tensor:
        b, t = idx.size()
        x = self.wte(idx) + self.wpe(torch.arange(0, t, dtype=torch.long, device=idx.device))  # expect: QL301
        for block in self.h:
            x = block(x)
        if not classify:
            return self.lm_head(self.ln_f(x))
        last = idx.ne(self.pad_token_id).sum(-1) - 1
        return self.score(self.ln_f(x)[torch.arange(b), last])
