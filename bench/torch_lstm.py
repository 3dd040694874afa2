#!/usr/bin/python3
"""PyTorch reference for bench_lstm: the same network and training step as core/lstm.c.

usage: torch_lstm.py [SECONDS]            training tokens/s, one line:
           torch_train TOKENS SECONDS TOKENS_PER_S
       torch_lstm.py --family N EPOCHS    train one synthetic family of N tokens with the
                                          malfam defaults, print torch_family TOKENS SECONDS

Configuration (the issue's): vocab 342, embedding 64, LSTM 128, dense 128 (tanh), BPTT 64,
batch 32, Adam + gradient-norm clipping, one thread (torch.set_num_threads(1)); the LSTM
state is carried across windows and detached (truncated BPTT), as malfam does.
"""
import sys
import time

import torch

V, E, H, D, T, B = 342, 64, 128, 128, 64, 32


class Net(torch.nn.Module):
    def __init__(self, v, e, h, d):
        super().__init__()
        self.emb = torch.nn.Embedding(v, e)
        self.lstm = torch.nn.LSTM(e, h)
        self.dense = torch.nn.Linear(h, d)
        self.out = torch.nn.Linear(d, v)

    def forward(self, x, state):
        hs, state = self.lstm(self.emb(x), state)
        return self.out(torch.tanh(self.dense(hs))), state


def stream(n, v, gen):
    steps = torch.randint(0, 17, (n,), generator=gen)
    return torch.cumsum(steps, 0) % v


def train(seq, v, e, h, d, t, b, lr, clip, seconds=None, epochs=None):
    net = Net(v, e, h, d)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    per = (len(seq) - 1) // b
    xs = seq[:per * b].view(b, per).t().contiguous()          # (per, B) time-major streams
    ys = seq[1:per * b + 1].view(b, per).t().contiguous()
    tokens, t0, ep = 0, time.time(), 0
    while True:
        state = None
        for pos in range(0, per, t):
            x, y = xs[pos:pos + t], ys[pos:pos + t]
            logits, state = net(x, state)
            state = tuple(s.detach() for s in state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            tokens += x.numel()
            if seconds is not None and time.time() - t0 >= seconds:
                return tokens, time.time() - t0
        ep += 1
        if epochs is not None and ep >= epochs:
            return tokens, time.time() - t0


def main():
    torch.set_num_threads(1)
    torch.manual_seed(11)
    gen = torch.Generator().manual_seed(11)
    if len(sys.argv) > 1 and sys.argv[1] == "--family":
        n, epochs = int(sys.argv[2]), int(sys.argv[3])
        # malfam train defaults: embed 32, hidden 128, dense 64, bptt 32, batch 16, lr 3e-3
        tokens, secs = train(stream(n, V, gen), V, 32, 128, 64, 32, 16, 3e-3, 5.0,
                             epochs=epochs)
        print("torch_family %d %.3f" % (tokens, secs))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    seq = stream(1 << 20, V, gen)
    train(seq, V, E, H, D, T, B, 1e-3, 5.0, seconds=0.5)       # warm-up
    tokens, secs = train(seq, V, E, H, D, T, B, 1e-3, 5.0, seconds=seconds)
    print("torch_train %d %.3f %.0f" % (tokens, secs, tokens / secs))


if __name__ == "__main__":
    main()
