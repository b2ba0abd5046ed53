"""Simple-HGN and the GAT / GCN baselines of the HGB paper, on `common.ops.edge_attention`.

Paper: Lv et al., "Are we really making much progress? Revisiting, benchmarking, and refining heterogeneous
graph neural networks", KDD 2021 (arXiv 2112.14936). Official code: THUDM/HGB, `NC/benchmark/methods/
baseline/{conv.py,GNN.py}` (`myGATConv`, `myGAT`, `GAT`, `GCN`), `LP/benchmark/methods/baseline/GNN.py`.

A graph is one homogeneous edge list over all node types (ids in type order), sorted by destination, with an
edge-type id per edge: `Graph(index: EdgeIndex, etype: LongTensor (E,))`. Node features enter per node
type through `TypeProjection`.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.ops.edge_attention import EdgeIndex, aggregate, edge_softmax, sort_by_dst

RELU_GAIN = math.sqrt(2.0)  # nn.init.calculate_gain('relu'), used by myGATConv.reset_parameters
INPUT_GAIN = 1.414  # the official per-type input projections


@dataclass
class Graph:
    index: EdgeIndex  # CSR order (sorted by dst, then src)
    etype: torch.Tensor  # (E,) edge-type ids, aligned with index

    @classmethod
    def from_edges(cls, src, dst, etype, num_nodes):
        src, dst, etype = sort_by_dst(src, dst, etype)
        return cls(EdgeIndex.build(src, dst, num_nodes), etype)

    @property
    def num_nodes(self):
        return self.index.num_nodes

    def to(self, device):
        return Graph(self.index.to(device), self.etype.to(device))


class TypeProjection(nn.Module):
    """h^0 = concat_t(Linear_t(x_t)): one Linear(in_dim_t, hidden, bias=True) per node type (xavier_normal,
    gain 1.414), nodes stacked in global id order.

    A type whose input is a one-hot id (HGB's sparse identity features) has `one_hot=True`; Linear(I) is its
    weight transposed plus the bias, so the N_t x N_t identity is never built: same parameters, same init,
    same output as the official sparse-identity input.
    """

    def __init__(self, in_dims, one_hot, hidden_dim):
        super().__init__()
        self.one_hot = list(one_hot)
        self.fcs = nn.ModuleList(nn.Linear(d, hidden_dim) for d in in_dims)
        for fc in self.fcs:
            nn.init.xavier_normal_(fc.weight, gain=INPUT_GAIN)

    def forward(self, features):
        """features: per node type a float tensor (N_t, F_t), or None for a one-hot type -> (N, hidden)."""
        out = []
        for fc, is_one_hot, x in zip(self.fcs, self.one_hot, features, strict=True):
            out.append(fc.weight.t() + fc.bias if is_one_hot else fc(x))
        return torch.cat(out, 0)


class SimpleHGNConv(nn.Module):
    """One Simple-HGN attention layer (the official `myGATConv`); also plain GAT with `edge_dim=0`.

    For an edge j -> i of type psi and head m (Eqs. (1)-(3) of the paper, as the official code computes them):
        z_j      = W x_j                                               (W: fc, no bias; x = Dropout(h^{l-1}))
        r_psi    = W_r emb_l[psi]                                      (per-layer edge-type embedding)
        s_ij     = LeakyReLU(a_l . z_j + a_r . z_i + a_e . r_psi)       Eq. (1), a = [a_r || a_l || a_e]
        alpha_ij = Dropout(softmax_{j in N(i)} s_ij)
        alpha_ij <- (1 - beta) alpha_ij + beta alpha_ij^{(l-1)}        Eq. (3), residual attention
        h_i      = act(sum_j alpha_ij z_j + W_res x_i)                 Eq. (2), node residual
    The edge term a_e . W_r emb[psi] depends only on the edge type, so it is computed once per type
    ((T, H), then gathered per edge) instead of per edge as the official code does: same numbers, no E x H
    x De tensor. Returns h (N, H, D) and the attention (E, H), detached as in the official code.

    Args:
        residual: None, "linear" or "identity" (the builder decides: `myGATConv` uses identity only when
            in_dim == out_dim, DGL's `GATConv` when in_dim == heads * out_dim).
        beta: weight of the previous layer's attention (the official `alpha` argument; 0 disables).
    """

    def __init__(self, in_dim, out_dim, num_heads, *, num_etypes=1, edge_dim=64, feat_drop=0.5, attn_drop=0.5,
                 negative_slope=0.05, residual=None, activation=None, beta=0.0, bias=False):
        super().__init__()
        self.num_heads, self.out_dim, self.edge_dim, self.beta = num_heads, out_dim, edge_dim, beta
        self.fc = nn.Linear(in_dim, num_heads * out_dim, bias=False)
        self.attn_l = nn.Parameter(torch.empty(1, num_heads, out_dim))
        self.attn_r = nn.Parameter(torch.empty(1, num_heads, out_dim))
        if edge_dim:
            self.edge_emb = nn.Embedding(num_etypes, edge_dim)  # default N(0, 1) init, as in the official code
            self.fc_e = nn.Linear(edge_dim, num_heads * edge_dim, bias=False)
            self.attn_e = nn.Parameter(torch.empty(1, num_heads, edge_dim))
        self.feat_drop, self.attn_drop = nn.Dropout(feat_drop), nn.Dropout(attn_drop)
        self.leaky_relu = nn.LeakyReLU(negative_slope)
        if residual not in (None, "linear", "identity"):
            raise ValueError(f"residual must be None, 'linear' or 'identity', got {residual!r}")
        self.res_fc = nn.Linear(in_dim, num_heads * out_dim, bias=False) if residual == "linear" else None
        self.residual = residual
        self.bias = nn.Parameter(torch.zeros(1, num_heads, out_dim)) if bias else None
        self.activation = activation
        self.reset_parameters()

    def reset_parameters(self):
        for w in (self.fc.weight, self.attn_l, self.attn_r):
            nn.init.xavier_normal_(w, gain=RELU_GAIN)
        if self.edge_dim:
            nn.init.xavier_normal_(self.fc_e.weight, gain=RELU_GAIN)
            nn.init.xavier_normal_(self.attn_e, gain=RELU_GAIN)
        if self.res_fc is not None:
            nn.init.xavier_normal_(self.res_fc.weight, gain=RELU_GAIN)

    def edge_type_scores(self):
        """a_e . (W_r emb[psi]) for every edge type psi: (T, H)."""
        r = self.fc_e(self.edge_emb.weight).view(-1, self.num_heads, self.edge_dim)  # (T, H, De)
        return (r * self.attn_e).sum(-1)

    def forward(self, x, graph, res_attn=None):
        """x (N, F_in) -> h (N, H, D), attention (E, H)."""
        h = self.feat_drop(x)
        z = self.fc(h).view(-1, self.num_heads, self.out_dim)  # (N, H, D)
        el, er = (z * self.attn_l).sum(-1), (z * self.attn_r).sum(-1)  # (N, H) source and destination terms
        idx = graph.index
        s = el[idx.src] + er[idx.dst]  # (E, H)
        if self.edge_dim:
            s = s + self.edge_type_scores()[graph.etype]
        attn = self.attn_drop(edge_softmax(self.leaky_relu(s), idx))
        if res_attn is not None and self.beta:
            attn = attn * (1 - self.beta) + res_attn * self.beta
        out = aggregate(attn, z, idx)  # (N, H, D)
        if self.res_fc is not None:
            out = out + self.res_fc(h).view(h.shape[0], -1, self.out_dim)
        elif self.residual == "identity":
            out = out + h.view(h.shape[0], -1, self.out_dim)
        if self.bias is not None:
            out = out + self.bias
        if self.activation is not None:
            out = self.activation(out)
        return out, attn.detach()


class SimpleHGN(nn.Module):
    """Simple-HGN for node classification (official `myGAT`) and its GAT baseline.

    h^0 = TypeProjection(x); `num_layers` hidden attention layers (heads concatenated, ELU; node residual
    from the second on; attention residual beta passed layer to layer); an output attention layer with
    one head (node residual, no activation, no attention residual); logits = mean over heads, then
    L2-normalised (`logits / max(||logits||, 1e-12)`). `SimpleHGN.gat(...)` is the paper's GAT baseline
    (no edge-type term, no attention residual, DGL GATConv residual rule, no L2 norm).
    """

    def __init__(self, in_dims, one_hot, num_classes, num_etypes, *, hidden_dim=64, num_heads=8, num_layers=2,
                 edge_dim=64, feat_drop=0.5, attn_drop=0.5, negative_slope=0.05, residual=True, beta=0.05,
                 l2_norm=True, gat_residual_rule=False, output_heads=1, output_res_attn=False):
        super().__init__()
        self.l2_norm, self.output_res_attn = l2_norm, output_res_attn
        self.input = TypeProjection(in_dims, one_hot, hidden_dim)
        heads = [num_heads] * num_layers + [output_heads]
        dims = [hidden_dim] + [hidden_dim * num_heads] * num_layers  # input width of each conv layer
        outs = [hidden_dim] * num_layers + [num_classes]

        def residual_kind(layer):
            if layer == 0 or not residual:
                return None
            same = dims[layer] == (heads[layer] * outs[layer] if gat_residual_rule else outs[layer])
            return "identity" if same else "linear"

        self.layers = nn.ModuleList(
            SimpleHGNConv(dims[i], outs[i], heads[i], num_etypes=num_etypes, edge_dim=edge_dim,
                          feat_drop=feat_drop, attn_drop=attn_drop, negative_slope=negative_slope,
                          residual=residual_kind(i), activation=F.elu if i < num_layers else None, beta=beta)
            for i in range(num_layers + 1))

    @classmethod
    def gat(cls, in_dims, one_hot, num_classes, num_etypes, **kwargs):
        """The paper's GAT baseline (official `GAT` with DGL 0.4 `GATConv`)."""
        kwargs.update(edge_dim=0, beta=0.0, l2_norm=False, gat_residual_rule=True)
        return cls(in_dims, one_hot, num_classes, num_etypes, **kwargs)

    def forward(self, features, graph, return_embedding=False):
        """features: list per node type (tensor or None for one-hot) -> logits (N, C) for every node.

        With `return_embedding` (the LP encoder): concat of the L2-normalised h^0, head-mean of every hidden
        layer, and the normalised output -> (N, hidden * (num_layers + 1) + C).
        """
        h = self.input(features)
        emb = [F.normalize(h, dim=1, eps=1e-12)] if return_embedding else None
        res_attn = None
        for layer in self.layers[:-1]:
            h, res_attn = layer(h, graph, res_attn)
            if return_embedding:
                emb.append(F.normalize(h.mean(1), dim=1, eps=1e-12))
            h = h.flatten(1)  # concatenate heads
        logits, _ = self.layers[-1](h, graph, res_attn if self.output_res_attn else None)
        logits = logits.mean(1)
        if self.l2_norm:
            logits = F.normalize(logits, dim=1, eps=1e-12)
        return torch.cat(emb + [logits], 1) if return_embedding else logits


class Bilinear(nn.Module):
    """The official LP `DistMult` decoder, which is a full bilinear form: score = u^T W_r v, W (R, d, d).

    The official code gathers `W[rel]`, a (B, d, d) tensor, and multiplies per link (9.8 GB at PubMed's batch
    8192). Here the links are grouped by relation and each group is one matrix product (B_r, d) @ (d, d):
    the same scores with (B, d) memory.
    """

    def __init__(self, num_relations, dim):
        super().__init__()
        self.W = nn.Parameter(torch.empty(num_relations, dim, dim))
        nn.init.xavier_normal_(self.W, gain=INPUT_GAIN)

    def forward(self, left, right, rel):
        """left, right (B, d), rel (B,) -> scores (B,)."""
        if rel.numel() == 0:
            return left.new_zeros(0)
        order = torch.argsort(rel, stable=True)  # links grouped by relation
        rels, counts = torch.unique_consecutive(rel[order], return_counts=True)
        counts = counts.tolist()
        pieces = [((u @ self.W[r]) * v).sum(-1)  # (B_r,)
                  for r, u, v in zip(rels.tolist(), left[order].split(counts), right[order].split(counts),
                                     strict=True)]
        grouped = torch.cat(pieces)
        return grouped.new_empty(len(rel)).index_copy(0, order, grouped)  # back to the input order


class Dot(nn.Module):
    """score = <u, v> (the official LP `Dot` decoder; the relation is ignored)."""

    def forward(self, left, right, rel):
        return (left * right).sum(-1)


DECODERS = ("distmult", "dot")


class SimpleHGNLinkPredictor(nn.Module):
    """Simple-HGN for link prediction (official LP `myGAT`): the encoder's output layer keeps `num_heads`
    heads, outputs `hidden_dim` and receives the residual attention; a node's embedding is the concat of
    the L2-normalised states of every layer (dim hidden * (num_layers + 2)); the decoder scores (u, r, v).
    `decoder="distmult"` is the official (bilinear) DistMult, `"dot"` the inner product."""

    def __init__(self, in_dims, one_hot, num_etypes, *, hidden_dim=64, num_heads=2, num_layers=2,
                 decoder="distmult", **kwargs):
        super().__init__()
        self.encoder = SimpleHGN(in_dims, one_hot, hidden_dim, num_etypes, hidden_dim=hidden_dim,
                                 num_heads=num_heads, num_layers=num_layers, output_heads=num_heads,
                                 output_res_attn=True, **kwargs)
        dim = hidden_dim * (num_layers + 2)
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.decoder = Bilinear(num_etypes, dim) if decoder == "distmult" else Dot()

    def embed(self, features, graph):
        return self.encoder(features, graph, return_embedding=True)

    def score(self, emb, left, right, rel):
        """Logits for pairs (left[k] -rel[k]-> right[k]) given node embeddings (N, dim)."""
        return self.decoder(emb[left], emb[right], rel)

    def forward(self, features, graph, left, right, rel):
        return self.score(self.embed(features, graph), left, right, rel)


class GraphConv(nn.Module):
    """DGL 0.4 `GraphConv` (norm=True): h_i = sum_{j in N(i)} x_j W / sqrt(d_j d_i) + b; `weight=False`
    skips W (the first official GCN layer)."""

    def __init__(self, in_dim, out_dim, weight=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim)) if weight else None
        self.bias = nn.Parameter(torch.zeros(out_dim))
        if weight:
            nn.init.xavier_uniform_(self.weight)

    def forward(self, x, graph):
        idx = graph.index
        if self.weight is not None:
            x = x @ self.weight
        deg = idx.in_degree().clamp(min=1).to(x.dtype)
        norm = deg.rsqrt()
        w = (norm[idx.src] * norm[idx.dst]).unsqueeze(1)  # (E, 1) symmetric normalisation per edge
        return aggregate(w, x.unsqueeze(1), idx).squeeze(1) + self.bias


class GCN(nn.Module):
    """The paper's GCN baseline (official `GCN`): TypeProjection, then num_layers + 1 GraphConv layers
    (the first without a weight), dropout before each, activation after all but the last."""

    def __init__(self, in_dims, one_hot, num_classes, num_etypes=None, *, hidden_dim=64, num_layers=2,
                 dropout=0.5, activation=F.elu, **_unused):
        super().__init__()
        self.input = TypeProjection(in_dims, one_hot, hidden_dim)
        self.layers = nn.ModuleList([GraphConv(hidden_dim, hidden_dim, weight=False)]
                                    + [GraphConv(hidden_dim, hidden_dim) for _ in range(num_layers - 1)]
                                    + [GraphConv(hidden_dim, num_classes)])
        self.dropout, self.activation = nn.Dropout(dropout), activation

    def forward(self, features, graph):
        h = self.input(features)
        for i, layer in enumerate(self.layers):
            h = layer(self.dropout(h), graph)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h


MODELS = ("simple_hgn", "gat", "gcn")


def build_model(name, in_dims, one_hot, num_classes, num_etypes, **kwargs):
    """Simple-HGN or a paper baseline by name: `simple_hgn`, `gat` or `gcn`."""
    if name == "simple_hgn":
        return SimpleHGN(in_dims, one_hot, num_classes, num_etypes, **kwargs)
    if name == "gat":
        return SimpleHGN.gat(in_dims, one_hot, num_classes, num_etypes, **kwargs)
    if name == "gcn":
        return GCN(in_dims, one_hot, num_classes, num_etypes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
