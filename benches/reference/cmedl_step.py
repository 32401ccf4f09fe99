"""Plain-PyTorch reference of cmedl's CMEDL training step, for `cargo xtask bench`.

Same networks (CycleGAN ResNet generators, 3-layer PatchGANs, U-Net teacher and student with
batch norm), same losses (LSGAN, cycle and identity L1, cross-entropy + soft Dice on both
segmenters, MSE hint on the last two decoder maps with the teacher detached), same image pools
and Adam settings as `cmedl bench --what train`. Prints one JSON line.
"""

import argparse
import os
import json
import random
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    "cpu": dict(size=64, batch=4, ngf=16, blocks=3, ndf=16, base=8, depth=4),
    "paper": dict(size=256, batch=8, ngf=64, blocks=9, ndf=64, base=32, depth=4),
}


class ResnetBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


def resnet_generator(ngf, blocks):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(1, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
    layers += [ResnetBlock(4 * ngf) for _ in range(blocks)]
    for i in range(2):
        c = 4 * ngf // 2 ** i
        layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patchgan(ndf, n_layers=3):
    layers = [nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    prev = ndf
    for n in range(1, n_layers + 1):
        c = ndf * min(2 ** n, 8)
        stride = 2 if n < n_layers else 1
        layers += [nn.Conv2d(prev, c, 4, stride, 1), nn.InstanceNorm2d(c), nn.LeakyReLU(0.2, True)]
        prev = c
    layers += [nn.Conv2d(prev, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


def double_conv(ci, c):
    return nn.Sequential(nn.Conv2d(ci, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True),
                         nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True))


class UNet(nn.Module):
    def __init__(self, base, depth, classes=2):
        super().__init__()
        self.enc = nn.ModuleList([double_conv(1 if i == 0 else base << (i - 1), base << i) for i in range(depth + 1)])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(base << (level + 1), base << level, 2, stride=2))
            self.dec.append(double_conv(2 * (base << level), base << level))
        self.head = nn.Conv2d(base, classes, 1)

    def forward(self, x):
        skips = []
        h = self.enc[0](x)
        for e in self.enc[1:]:
            skips.append(h)
            h = e(F.max_pool2d(h, 2))
        feats = {}
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            h = dec(torch.cat([skips[-1 - i], up(h)], 1))
            feats[f"dec{i + 1}"] = h
        return self.head(h), feats


def dice_ce(logits, y, smooth=1e-5):
    ce = F.cross_entropy(logits, y)
    p = logits.softmax(1)
    g = F.one_hot(y, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (p * g).sum((0, 2, 3))
    dice = (2 * inter + smooth) / (p.sum((0, 2, 3)) + g.sum((0, 2, 3)) + smooth)
    return ce + (1 - dice[1:].mean())


class Pool:
    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, batch):
        out = []
        for img in batch.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif random.random() < 0.5:
                j = random.randrange(self.size)
                out.append(self.images[j].clone())
                self.images[j] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


def count(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    c = dict(CONFIGS[args.config])
    # Under torchrun: DistributedDataParallel, each rank with its share of the global batch.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if args.device.startswith("cuda"):
            args.device = f"cuda:{local}"
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
        assert c["batch"] % world == 0, "the global batch must split evenly"
        c["batch"] //= world
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    random.seed(0)
    g_s2t, g_t2s = resnet_generator(c["ngf"], c["blocks"]).to(dev), resnet_generator(c["ngf"], c["blocks"]).to(dev)
    d_t, d_s = patchgan(c["ndf"]).to(dev), patchgan(c["ndf"]).to(dev)
    teacher, student = UNet(c["base"], c["depth"]).to(dev), UNet(c["base"], c["depth"]).to(dev)
    if world > 1:
        # Networks used twice per step or frozen in part of it: unused parameters allowed, and
        # batch-norm buffers stay per rank (broadcasting them in place breaks a second forward).
        wrap = lambda m: DDP(m, find_unused_parameters=True, broadcast_buffers=False)
        g_s2t, g_t2s, d_t, d_s, teacher, student = map(wrap, (g_s2t, g_t2s, d_t, d_s, teacher, student))
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(list(g_s2t.parameters()) + list(g_t2s.parameters()), 2e-4, betas)
    opt_s = torch.optim.Adam(list(teacher.parameters()) + list(student.parameters()), 2e-4, betas)
    opt_d = torch.optim.Adam(list(d_t.parameters()) + list(d_s.parameters()), 2e-4, betas)
    pool_t, pool_s = Pool(), Pool()
    b, s = c["batch"], c["size"]
    xs, xt = torch.rand(b, 1, s, s, device=dev) * 2 - 1, torch.rand(b, 1, s, s, device=dev) * 2 - 1
    ys, yt = (torch.rand(b, s, s, device=dev) > 0.9).long(), (torch.rand(b, s, s, device=dev) > 0.9).long()
    depth = c["depth"]
    hint = [f"dec{depth - 1}", f"dec{depth}"]

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            for d in (d_t, d_s):
                d.requires_grad_(False)
            ft, fs = g_s2t(xs), g_t2s(xt)
            adv = ((d_t(ft) - 1) ** 2).mean() + ((d_s(fs) - 1) ** 2).mean()
            cyc = 10 * (F.l1_loss(g_t2s(ft), xs) + F.l1_loss(g_s2t(fs), xt))
            idt = 5 * (F.l1_loss(g_s2t(xt), xt) + F.l1_loss(g_t2s(xs), xs))
            t_logits, t_feats = teacher(ft)
            seg_t = dice_ce(t_logits.float(), ys) + dice_ce(teacher(xt)[0].float(), yt)
            s_logits, s_feats = student(xs)
            seg_s = dice_ce(s_logits.float(), ys)
            distill = sum(F.mse_loss(s_feats[k].float(), t_feats[k].detach().float()) for k in hint)
            total = adv + cyc + idt + seg_t + seg_s + distill
        opt_g.zero_grad(set_to_none=True)
        opt_s.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        opt_s.step()
        for d in (d_t, d_s):
            d.requires_grad_(True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            pt, ps = pool_t.query(ft), pool_s.query(fs)
            d_loss = 0.5 * (((d_t(xt) - 1) ** 2).mean() + (d_t(pt) ** 2).mean()) \
                + 0.5 * (((d_s(xs) - 1) ** 2).mean() + (d_s(ps) ** 2).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        return total

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    # Step times one by one on the CPU (their median resists a busy machine); on a GPU only the
    # whole loop is timed, so that no step waits for the host.
    step_s = []
    start = time.perf_counter()
    for _ in range(args.steps):
        began = time.perf_counter()
        total = step()
        if dev.type == "cpu":
            step_s.append(time.perf_counter() - began)
    total.item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    median_s = sorted(step_s)[len(step_s) // 2] if step_s else secs / args.steps
    # The three optimisers alone, on the gradients of the last step.
    rounds = 20
    if dev.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(rounds):
        opt_g.step()
        opt_s.step()
        opt_d.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    optimizer_ms = (time.perf_counter() - began) * 1e3 / rounds
    gb = b * world  # the global batch
    out = {
        "bench": "train", "impl": "pytorch", "config": args.config, "device": str(dev),
        "precision": "bf16" if args.bf16 else "fp32", "world_size": world,
        "backend": dist.get_backend() if world > 1 else "none", "batch": gb, "size": s,
        "steps": args.steps, "slices_per_s": args.steps * gb / secs, "step_ms": secs * 1e3 / args.steps,
        "slices_per_s_median": gb / median_s, "step_ms_median": median_s * 1e3,
        "optimizer_ms": optimizer_ms,
        # Peak resident memory of the whole process (Linux reports KiB), as cmedl reports it.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "params": {"g_s2t": count(g_s2t), "g_t2s": count(g_t2s), "d_t": count(d_t), "d_s": count(d_s),
                   "teacher": count(teacher), "student": count(student)},
    }
    if dev.type == "cuda":
        out["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    if rank == 0:
        print(json.dumps(out))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
