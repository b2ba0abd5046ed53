"""Simple-HGN layers and models against dense re-statements of the paper's equations."""
import pytest
import torch
import torch.nn.functional as F
from simple_hgn.model import (
    GCN,
    Bilinear,
    Dot,
    Graph,
    GraphConv,
    SimpleHGN,
    SimpleHGNConv,
    SimpleHGNLinkPredictor,
    TypeProjection,
    build_model,
)


def random_graph(n=7, num_etypes=3, seed=0):
    """Random typed edges plus one self-loop per node (every node has an incoming edge), no duplicates."""
    g = torch.Generator().manual_seed(seed)
    adj = torch.rand(n, n, generator=g) < 0.35
    adj |= torch.eye(n, dtype=torch.bool)
    dst, src = adj.nonzero(as_tuple=True)  # adj[i, j]: edge j -> i
    etype = torch.randint(0, num_etypes, (len(src),), generator=g)
    return Graph.from_edges(src, dst, etype, n), adj


def dense_simple_hgn_layer(layer, x, graph, adj, res_attn=None):
    """Eqs. (1)-(3) of the paper written densely, per head m, with an explicit N x N attention matrix:
    s_ij = LeakyReLU(a_r.Wh_i + a_l.Wh_j + a_e.W_r r_psi(ij)), alpha = softmax_j over N(i) (masked by adj),
    alpha <- (1-beta) alpha + beta alpha_prev, h_i = sum_j alpha_ij W h_j + W_res h_i (then activation)."""
    n, heads, d = x.shape[0], layer.num_heads, layer.out_dim
    z = (x @ layer.fc.weight.t()).view(n, heads, d)
    etype_dense = torch.zeros(n, n, dtype=torch.long)
    etype_dense[graph.index.dst, graph.index.src] = graph.etype
    out = torch.zeros(n, heads, d, dtype=x.dtype)
    attn_dense = torch.zeros(heads, n, n, dtype=x.dtype)
    for m in range(heads):
        r = layer.edge_emb.weight @ layer.fc_e.weight.t()  # (T, H*De): W_r r_psi for every type
        r = r.view(-1, heads, layer.edge_dim)[:, m]  # (T, De)
        s = ((z[:, m] @ layer.attn_r[0, m])[:, None] + (z[:, m] @ layer.attn_l[0, m])[None, :]
             + (r @ layer.attn_e[0, m])[etype_dense])
        s = F.leaky_relu(s, layer.leaky_relu.negative_slope).masked_fill(~adj, float("-inf"))
        a = torch.softmax(s, dim=1).nan_to_num(0.0)
        if res_attn is not None:
            prev = torch.zeros(n, n, dtype=x.dtype)
            prev[graph.index.dst, graph.index.src] = res_attn[:, m]
            a = (1 - layer.beta) * a + layer.beta * prev
        attn_dense[m] = a
        out[:, m] = a @ z[:, m]
    if layer.res_fc is not None:
        out = out + (x @ layer.res_fc.weight.t()).view(n, -1, d)
    if layer.activation is not None:
        out = layer.activation(out)
    return out, attn_dense


def test_layer_matches_dense_paper_equations():
    torch.manual_seed(0)
    graph, adj = random_graph()
    layer = SimpleHGNConv(5, 4, 3, num_etypes=3, edge_dim=6, feat_drop=0.0, attn_drop=0.0, negative_slope=0.2,
                          residual="linear", activation=F.elu, beta=0.05).double().eval()
    x = torch.randn(7, 5, dtype=torch.float64)
    res_attn = torch.rand(graph.index.num_edges, 3, dtype=torch.float64)
    out, attn = layer(x, graph, res_attn)
    ref_out, ref_attn = dense_simple_hgn_layer(layer, x, graph, adj, res_attn)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(attn, ref_attn[:, graph.index.dst, graph.index.src].t())
    assert not attn.requires_grad, "residual attention is detached, as in the official code"


def test_edge_term_per_type_equals_official_per_edge_projection():
    """The official code applies fc_e to every edge's embedding; we project each type once and gather."""
    torch.manual_seed(1)
    layer = SimpleHGNConv(4, 3, 2, num_etypes=5, edge_dim=6)
    etype = torch.randint(0, 5, (50,))
    per_edge = layer.fc_e(layer.edge_emb(etype)).view(-1, 2, 6)  # (E, H, De), as conv.py
    official = (per_edge * layer.attn_e).sum(-1)
    torch.testing.assert_close(layer.edge_type_scores()[etype], official)


def test_identity_residual_rules():
    # myGATConv: identity when in_dim == out_dim (broadcast over heads); DGL GATConv: when in == heads*out
    layer = SimpleHGNConv(4, 4, 2, residual="identity", feat_drop=0, attn_drop=0, edge_dim=0).eval()
    graph, _ = random_graph(n=5)
    x = torch.randn(5, 4)
    no_res = SimpleHGNConv(4, 4, 2, residual=None, feat_drop=0, attn_drop=0, edge_dim=0).eval()
    no_res.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x, graph)[0], no_res(x, graph)[0] + x.view(5, 1, 4))
    with pytest.raises(ValueError, match="residual"):
        SimpleHGNConv(4, 4, 2, residual="yes")
    m = SimpleHGN([3], [False], 2, 1, hidden_dim=4, num_heads=2, num_layers=2)
    assert [type(layer.res_fc).__name__ for layer in m.layers] == ["NoneType", "Linear", "Linear"]
    g = SimpleHGN.gat([3], [False], 2, 1, hidden_dim=4, num_heads=2, num_layers=2)
    assert [layer.residual for layer in g.layers] == [None, "identity", "linear"]


def test_type_projection_one_hot_equals_linear_on_identity():
    torch.manual_seed(0)
    proj = TypeProjection([3, 4], [False, True], 5)
    x = torch.randn(2, 3)
    out = proj([x, None])
    expected = torch.cat([proj.fcs[0](x), proj.fcs[1](torch.eye(4))])
    torch.testing.assert_close(out, expected)


def test_simple_hgn_output_is_l2_normalised_and_layers_wired_like_official():
    torch.manual_seed(0)
    graph, _ = random_graph(n=9, num_etypes=4)
    model = SimpleHGN([3, 2], [False, False], 4, 4, hidden_dim=8, num_heads=2, num_layers=2, edge_dim=5)
    logits = model([torch.randn(5, 3), torch.randn(4, 2)], graph)
    assert logits.shape == (9, 4)
    torch.testing.assert_close(logits.norm(dim=1), torch.ones(9))
    assert [layer.num_heads for layer in model.layers] == [2, 2, 1]
    assert [layer.fc.in_features for layer in model.layers] == [8, 16, 16]
    assert model.layers[-1].activation is None and model.layers[0].activation is F.elu


def test_attention_residual_is_passed_between_hidden_layers_only(monkeypatch):
    graph, _ = random_graph(n=6)
    model = SimpleHGN([3], [False], 2, 3, hidden_dim=4, num_heads=2, num_layers=3).eval()
    seen = []
    for layer in model.layers:
        orig = layer.forward
        monkeypatch.setattr(layer, "forward", lambda x, g, r=None, orig=orig: (seen.append(r), orig(x, g, r))[1])
    model([torch.randn(6, 3)], graph)
    assert seen[0] is None and seen[1] is not None and seen[2] is not None and seen[3] is None


@pytest.mark.parametrize("name", ["simple_hgn", "gat", "gcn"])
def test_every_parameter_gets_a_gradient_and_no_nan(name):
    torch.manual_seed(0)
    graph, _ = random_graph(n=8, num_etypes=3)
    model = build_model(name, [3, 4], [False, True], 3, 3, hidden_dim=6, num_layers=2)
    logits = model([torch.randn(4, 3), None], graph)
    assert logits.shape == (8, 3) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    with pytest.raises(ValueError, match="unknown model"):
        build_model("hgt", [3], [False], 3, 3)


def test_graph_conv_matches_dense_symmetric_normalisation():
    torch.manual_seed(0)
    graph, adj = random_graph(n=6)
    conv = GraphConv(3, 2)
    x = torch.randn(6, 3)
    deg = adj.sum(1).float()  # in-degree (rows are destinations)
    norm = deg.rsqrt()
    expected = (norm[:, None] * adj.float() * norm[None, :]) @ (x @ conv.weight) + conv.bias
    torch.testing.assert_close(conv(x, graph), expected)
    gcn = GCN([3], [False], 2, hidden_dim=4, num_layers=2)
    assert gcn.layers[0].weight is None and len(gcn.layers) == 3


def test_lp_model_embedding_and_decoders():
    torch.manual_seed(0)
    graph, _ = random_graph(n=8, num_etypes=3)
    model = SimpleHGNLinkPredictor([3, 4], [False, True], 3, hidden_dim=4, num_heads=2, num_layers=2, edge_dim=3)
    emb = model.embed([torch.randn(4, 3), None], graph)
    assert emb.shape == (8, 4 * (2 + 2))  # h0, two hidden layers, output: each L2-normalised
    for k in range(4):
        torch.testing.assert_close(emb[:, 4 * k:4 * (k + 1)].norm(dim=1), torch.ones(8))
    left, right, rel = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1, 2])
    scores = model([torch.randn(4, 3), None], graph, left, right, rel)
    assert scores.shape == (2,)
    bil = Bilinear(3, 4)
    u, v = torch.randn(2, 4), torch.randn(2, 4)
    official = torch.bmm(torch.bmm(u.unsqueeze(1), bil.W[rel]), v.unsqueeze(2)).squeeze()  # LP GNN.py DistMult
    torch.testing.assert_close(bil(u, v, rel), official)
    torch.testing.assert_close(Dot()(u, v, rel), (u * v).sum(1))
    assert model.encoder.layers[-1].num_heads == 2 and model.encoder.output_res_attn


class LargestTensor(torch.overrides.TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns inside the block."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_bilinear_decoder_groups_by_relation_with_official_scores_and_no_per_link_matrix():
    """Issue 13: the official DistMult gathers W[rel], (B, d, d). Same scores and gradients, per-link memory O(d)."""
    torch.manual_seed(0)
    b, d, num_rel = 96, 16, 5
    bil = Bilinear(num_rel, d)
    u, v = torch.randn(b, d, requires_grad=True), torch.randn(b, d, requires_grad=True)
    rel = torch.randint(0, num_rel - 1, (b,))  # shuffled relations; relation num_rel - 1 never occurs
    official = torch.bmm(torch.bmm(u.unsqueeze(1), bil.W[rel]), v.unsqueeze(2)).squeeze()  # LP GNN.py DistMult
    grads = torch.autograd.grad(official.pow(2).sum(), (u, v, bil.W))
    with LargestTensor() as mode:
        ours = bil(u, v, rel)
    torch.testing.assert_close(ours, official)
    for a, g in zip(torch.autograd.grad(ours.pow(2).sum(), (u, v, bil.W)), grads, strict=True):
        torch.testing.assert_close(a, g)
    assert mode.largest <= max(b * d, num_rel * d * d), mode.largest  # never (B, d, d)
    assert bil(u[:0], v[:0], rel[:0]).shape == (0,)


def test_deterministic_under_fixed_seed():
    graph, _ = random_graph(n=8)

    def run():
        torch.manual_seed(3)
        model = SimpleHGN([8], [True], 3, 3, hidden_dim=4, num_heads=2)
        return model([None], graph)

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)
