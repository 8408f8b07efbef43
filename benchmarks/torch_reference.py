"""A PyTorch D2LNet with the released model's structure and key names: the speed baseline.

The authors' released code is not in this repository; this module rebuilds its forward
pass from docs/architecture.md so benchmarks can time "the PyTorch original" in the same
run as d2ljax. `check_against_fixture` proves it computes what the released model does
(it loads the released-layout .pth and reproduces the fixture's outputs), so its timings
stand for the original's. Needs torch (`pip install 'd2ljax[torch]'`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _real_bins_exact(spec: torch.Tensor, width: int) -> torch.Tensor:
    """d2ljax's one change to the released FFT calls: imaginary parts of the exactly-real bins set to +0."""
    h = spec.shape[-2]
    rows = [0] + ([h // 2] if h % 2 == 0 else [])
    cols = [0] + ([width // 2] if width % 2 == 0 else [])
    mask = torch.zeros(spec.shape[-2:], dtype=torch.bool, device=spec.device)
    for r in rows:
        for c in cols:
            mask[r, c] = True
    return torch.complex(spec.real, torch.where(mask, torch.zeros_like(spec.imag), spec.imag))


class HinResBlock(nn.Module):
    def __init__(self, c, slope=0.2):
        super().__init__()
        self.identity = nn.Conv2d(c, c, 1)  # unused, as released
        self.conv_1 = nn.Conv2d(c, c, 3, padding=1)
        self.relu_1 = nn.LeakyReLU(slope)
        self.conv_2 = nn.Conv2d(c, c, 3, padding=1)
        self.relu_2 = nn.LeakyReLU(slope)
        self.conv_3 = nn.Conv2d(2 * c, c, 3, padding=1)  # unused, as released
        self.norm = nn.InstanceNorm2d(c // 2, affine=True)

    def forward(self, x):
        r = self.relu_1(self.conv_1(x))
        a, b = torch.chunk(r, 2, dim=1)
        r = self.relu_2(self.conv_2(torch.cat([self.norm(a), b], dim=1)))
        return x + r


class SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.sigmoid(self.conv1(torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)))


class FFTConvBlock(nn.Module):
    def __init__(self, c_in, c_out, downsample, mode, csff, slope=0.2):
        super().__init__()
        self.mode, self.has_down = mode, downsample
        self.identity = nn.Conv2d(c_in, c_out, 1)
        self.conv_1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv_2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.relu = nn.LeakyReLU(slope)
        self.conv_fft_1 = nn.Conv2d(c_out, c_out, 1)
        self.conv_fft_2 = nn.Conv2d(c_out, c_out, 1)
        self.sa = SpatialAttention()
        if downsample:
            self.downsample = nn.Conv2d(c_out, c_out, 4, stride=2, padding=1, bias=False)
        if csff:
            self.csff_enc = nn.Conv2d(c_out, c_out, 3, padding=1)
            self.csff_dec = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x, enc=None, dec=None):
        s = self.relu(self.conv_2(self.relu(self.conv_1(x))))
        x_res = self.identity(x)
        if self.mode == "none":
            out = s + x_res
        else:
            # .float(): under bfloat16 autocast the FFT runs in float32 (no bfloat16 FFT), as in d2ljax
            spec = _real_bins_exact(torch.fft.fft2(x_res.float()), x_res.shape[-1])
            amp, pha = torch.abs(spec), torch.angle(spec)
            # .float() again: autocast's convolutions give bfloat16, which torch.polar refuses
            edit = lambda m: self.conv_fft_2(self.relu(self.conv_fft_1(m))).float()
            if self.mode == "phase":
                pha = edit(pha)
            else:
                amp = edit(amp)
            f = torch.fft.ifft2(torch.polar(amp, pha)).real
            out = s * self.sa(s - f) + x_res + f
        if enc is not None and dec is not None:
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        if self.has_down:
            return self.downsample(out), out
        return out


class UNetUpBlock(nn.Module):
    def __init__(self, c_in, c_out, slope=0.2):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv_block = FFTConvBlock(c_in, c_out, False, "none", False, slope)

    def forward(self, x, bridge):
        return self.conv_block(torch.cat([self.up(x), bridge], 1))


class SAM(nn.Module):
    def __init__(self, n, k):
        super().__init__()
        self.conv1 = nn.Conv2d(n, n, 3, padding=1)
        self.conv2 = nn.Conv2d(n, k, 3, padding=1)
        self.conv3 = nn.Conv2d(k, n, 3, padding=1)

    def forward(self, x, img_in):
        img = self.conv2(x) + img_in
        return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class ChannelAttention(nn.Module):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.process = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1), nn.ReLU(), nn.Conv2d(c // reduction, c, 1), nn.Sigmoid())

    def forward(self, x):
        r = self.process(x)
        return self.conv_du(r.mean((2, 3), keepdim=True)) * r + x


class Refine(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.conv_in = nn.Conv2d(c, c, 3, padding=1)
        self.process = nn.Sequential(ChannelAttention(c))
        self.conv_last = nn.Conv2d(c, k, 3, padding=1)

    def forward(self, x):
        return self.conv_last(self.process(self.conv_in(x)))


class TorchD2LNet(nn.Module):
    def __init__(self, in_chn=3, wf=64, depth=4, slope=0.2):
        super().__init__()
        self.depth = depth
        c = [2 ** i * wf for i in range(depth)]
        stem = lambda n: nn.Sequential(nn.Conv2d(in_chn, wf, 3, padding=1), *[HinResBlock(wf, slope) for _ in range(n)])
        self.conv_01, self.conv_02, self.pre_re = stem(2), stem(2), stem(1)
        prev = [wf] + c[:-1]
        self.down_path_1 = nn.ModuleList(FFTConvBlock(prev[i], c[i], i < depth - 1, "phase", False, slope) for i in range(depth))
        self.down_path_2 = nn.ModuleList(FFTConvBlock(prev[i], c[i], i < depth - 1, "amplitude", i < depth - 1, slope)
                                         for i in range(depth))
        levels = list(reversed(range(depth - 1)))
        self.up_path_1 = nn.ModuleList(UNetUpBlock(c[i + 1], c[i], slope) for i in levels)
        self.up_path_2 = nn.ModuleList(UNetUpBlock(c[i + 1], c[i], slope) for i in levels)
        self.skip_conv_1 = nn.ModuleList(HinResBlock(c[i], slope) for i in levels)
        self.skip_conv_2 = nn.ModuleList(HinResBlock(c[i], slope) for i in levels)
        self.sam12 = SAM(wf, in_chn)
        self.cat12 = nn.Conv2d(2 * wf, wf, 1)
        self.last, self.last2 = Refine(wf, in_chn), Refine(wf, in_chn)

    def forward(self, image):
        x1, encs, decs = self.conv_01(image), [], []
        for i, down in enumerate(self.down_path_1):
            if i < self.depth - 1:
                x1, e = down(x1)
                encs.append(e)
            else:
                x1 = down(x1)
        for j, up in enumerate(self.up_path_1):
            x1 = up(x1, self.skip_conv_1[j](encs[-1 - j]))
            decs.append(x1)
        sam_feature, out_1 = self.sam12(x1, image)
        f1 = _real_bins_exact(torch.fft.rfft2(out_1.float()), out_1.shape[-1])
        amp, pha = torch.abs(f1), torch.angle(f1)
        fi = _real_bins_exact(torch.fft.rfft2(image), image.shape[-1])
        image_inverse = torch.fft.irfft2(torch.polar(torch.abs(fi), pha), s=image.shape[-2:])
        x2 = self.cat12(torch.cat([self.conv_02(image_inverse), sam_feature], 1))
        blocks = []
        for i, down in enumerate(self.down_path_2):
            if i < self.depth - 1:
                x2, b = down(x2, encs[i], decs[-1 - i])
                blocks.append(b)
            else:
                x2 = down(x2)
        for j, up in enumerate(self.up_path_2):
            x2 = up(x2, self.skip_conv_2[j](blocks[-1 - j]))
        t = self.last(x2) + image
        return out_1, amp, pha, self.last2(self.pre_re(t)) + t


def check_against_fixture(npz_path: str, tol: float = 1e-4) -> float:
    """Loads a fixture's released weights and returns the max |out_2 - fixture out_2|."""
    ref = np.load(npz_path)
    state = {k.removeprefix("params/"): torch.from_numpy(ref[k]) for k in ref.files if k.startswith("params/")}
    wf, in_chn = state["conv_01.0.weight"].shape[:2]
    depth = len({k.split(".")[1] for k in state if k.startswith("down_path_1.")})
    model = TorchD2LNet(in_chn, wf, depth).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out_2 = model(torch.from_numpy(ref["x"]))[3].numpy()
    err = float(np.abs(out_2 - ref["out_2"]).max())
    if err > tol:
        raise AssertionError(f"torch reference differs from the released model's fixture by {err}")
    return err


if __name__ == "__main__":
    import sys
    print(check_against_fixture(sys.argv[1]))
