#!/usr/bin/python3
"""Cross-check of core/lstm.c against PyTorch.

Usage: lstm_torch.py DUMP

DUMP is written by tests/check_lstm.c (little-endian):
    int32 V, E, H, D, T, B
    int32 x[T*B], y[T*B]              time-major token ids and their targets
    float32 h0[B*H], c0[B*H]          state carried into the window
    float32 w[nparams]                the weight block (layout in core/lstm.h)
    float64 loss                      mean cross-entropy computed by C
    float32 g[nparams]                its gradient computed by C

The same network is built from torch.nn modules (Embedding, LSTM, Linear + tanh, Linear)
in float64, loaded with those weights, and run on the same window. Loss and the gradient of
every tensor must agree within 1e-4 relative (L2 norm of the difference over the norm of
torch's gradient). Exit 0 when they do, 1 when they do not, 3 when torch is missing.
"""
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the Check test turns this into a printed skip
    print("lstm_torch: torch unavailable: %s" % e)
    sys.exit(3)

TOL = 1e-4


def main(path):
    with open(path, "rb") as f:
        buf = f.read()
    V, E, H, D, T, B = struct.unpack_from("<6i", buf, 0)
    off = 24
    N = T * B

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=off)
        off += a.nbytes
        return a

    x = take("<i4", N).reshape(T, B)
    y = take("<i4", N).reshape(T, B)
    h0 = take("<f4", B * H).reshape(1, B, H)
    c0 = take("<f4", B * H).reshape(1, B, H)
    shapes = [("emb", V, E), ("wx", E, 4 * H), ("wh", H, 4 * H), ("b", 1, 4 * H),
              ("wd", H, D), ("bd", 1, D), ("wo", D, V), ("bo", 1, V)]
    nparams = sum(r * c for _, r, c in shapes)
    w = take("<f4", nparams)
    (closs,) = struct.unpack_from("<d", buf, off)
    off += 8
    g = take("<f4", nparams)

    def split(block):
        out, o = {}, 0
        for name, r, c in shapes:
            out[name] = block[o:o + r * c].reshape(r, c).astype(np.float64)
            o += r * c
        return out

    W, Gc = split(w), split(g)
    t = lambda a: torch.tensor(a, dtype=torch.float64)

    emb = torch.nn.Embedding(V, E).double()
    lstm = torch.nn.LSTM(E, H).double()
    dense = torch.nn.Linear(H, D).double()
    out = torch.nn.Linear(D, V).double()
    with torch.no_grad():
        emb.weight.copy_(t(W["emb"]))
        lstm.weight_ih_l0.copy_(t(W["wx"].T))     # C stores (in, out); torch (out, in)
        lstm.weight_hh_l0.copy_(t(W["wh"].T))
        lstm.bias_ih_l0.copy_(t(W["b"][0]))       # C has one gate bias; torch two
        lstm.bias_hh_l0.zero_()
        dense.weight.copy_(t(W["wd"].T))
        dense.bias.copy_(t(W["bd"][0]))
        out.weight.copy_(t(W["wo"].T))
        out.bias.copy_(t(W["bo"][0]))

    xs = torch.tensor(x.astype(np.int64))
    hs, _ = lstm(emb(xs), (t(h0), t(c0)))              # (T, B, H)
    logits = out(torch.tanh(dense(hs)))                # (T, B, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(N, V),
                                             torch.tensor(y.astype(np.int64)).reshape(N))
    loss.backward()

    Gt = {
        "emb": emb.weight.grad.numpy(),
        "wx": lstm.weight_ih_l0.grad.numpy().T,
        "wh": lstm.weight_hh_l0.grad.numpy().T,
        "b": lstm.bias_ih_l0.grad.numpy()[None, :],
        "wd": dense.weight.grad.numpy().T,
        "bd": dense.bias.grad.numpy()[None, :],
        "wo": out.weight.grad.numpy().T,
        "bo": out.bias.grad.numpy()[None, :],
    }
    ok = True
    lerr = abs(closs - loss.item()) / abs(loss.item())
    print("lstm_torch: torch %s loss C %.8f torch %.8f rel %.2e" %
          (torch.__version__, closs, loss.item(), lerr))
    ok &= lerr < TOL
    for name, _, _ in shapes:
        ref = Gt[name]
        err = np.linalg.norm(Gc[name] - ref) / max(np.linalg.norm(ref), 1e-30)
        print("lstm_torch: grad %-3s |g| %.3e rel %.2e" % (name, np.linalg.norm(ref), err))
        ok &= err < TOL
    print("lstm_torch: %s" % ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
